# The engine compiled for x86-64-v4 (AVX-512 F/CD/BW/DQ/VL, with AVX2 and FMA).
# Import it only after checking that the CPU and the OS support it
# (cbackprop._backend does): its code may use those instructions anywhere.
include "_engine.pxi"
include "_ops.pxi"
