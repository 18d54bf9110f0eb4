# The engine compiled with baseline flags: runs on any x86-64 (or other) CPU.
ctypedef fused real:
    float
    double

include "_kernels/microkernel_generic.pxi"
include "_engine.pxi"
include "_ops.pxi"

cdef extern from *:
    """
    static int cbackprop_cpu_has_avx2_fma(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    """
    int cbackprop_cpu_has_avx2_fma() nogil


def cpu_has_avx2_fma():
    """True when this CPU runs AVX2 and FMA instructions (checked at run time)."""
    return bool(cbackprop_cpu_has_avx2_fma())
