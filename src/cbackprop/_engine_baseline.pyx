# The engine compiled with baseline flags: runs on any x86-64 (or other) CPU.
ctypedef fused real:
    float
    double

include "_kernels/microkernel_generic.pxi"
include "_engine.pxi"
