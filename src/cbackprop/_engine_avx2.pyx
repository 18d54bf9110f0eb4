# The engine compiled with -mavx2 -mfma. Import it only after checking that
# the CPU has both (cbackprop._backend does): its code may use them anywhere.
include "_engine.pxi"
include "_ops.pxi"
