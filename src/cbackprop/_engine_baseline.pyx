# The engine compiled with baseline flags: runs on any x86-64 (or other) CPU.
# It also answers, at run time, which of the other builds this CPU can run.
include "_engine.pxi"
include "_ops.pxi"

cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #include <cpuid.h>
    #define CB_CPU_FEATURES \\
        X(avx2) X(fma) X(avx512f) X(avx512cd) X(avx512bw) X(avx512dq) X(avx512vl)
    static int cbackprop_cpu_supports(const char* feature) {
        __builtin_cpu_init();
    #define X(name) if (__builtin_strcmp(feature, #name) == 0) return __builtin_cpu_supports(#name);
        CB_CPU_FEATURES
    #undef X
        return 0;
    }
    /* Whether the OS saves the register state a build needs across context
     * switches (XCR0): ymm for AVX2, and opmask + zmm for AVX-512. */
    static int cbackprop_os_saves(int zmm) {
        unsigned int eax, ebx, ecx, edx, xcr0_lo, xcr0_hi;
        if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27)))  /* OSXSAVE */
            return 0;
        __asm__ volatile ("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
        unsigned int need = zmm ? 0xE6u : 0x06u;  /* SSE|AVX (|opmask|ZMM_Hi256|Hi16_ZMM) */
        return (xcr0_lo & need) == need;
    }
    /* AMD family 19h parts with AVX-512 (Zen 4: Genoa, Bergamo, Raphael,
     * Phoenix) execute each 512-bit instruction as two 256-bit halves; Zen 3
     * is the same family without AVX-512, Zen 5 is family 1Ah. */
    static int cbackprop_halves_512(void) {
        unsigned int eax, ebx, ecx, edx;
        if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx))
            return 0;
        int amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;  /* AuthenticAMD */
        if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx))
            return 0;
        unsigned int family = (eax >> 8) & 0xFu;
        if (family == 0xFu)
            family += (eax >> 20) & 0xFFu;
        return family == 0x19u && cbackprop_cpu_supports("avx512f");
    }
    #else
    static int cbackprop_cpu_supports(const char* feature) { return 0; }
    static int cbackprop_os_saves(int zmm) { return 0; }
    static int cbackprop_halves_512(void) { return 0; }
    #endif
    """
    int cbackprop_cpu_supports(const char* feature) nogil
    int cbackprop_os_saves(int zmm) nogil
    int cbackprop_halves_512() nogil

CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
# What each optimised build needs, besides the OS saving its registers.
BUILD_FEATURES = {"avx2": ("avx2", "fma"), "avx512": CPU_FEATURES}


def cpu_features():
    """The CPU features the engine builds depend on, and whether the OS saves
    the ymm and zmm register state (checked at run time)."""
    features = {name: bool(cbackprop_cpu_supports(name.encode())) for name in CPU_FEATURES}
    features["os_ymm"] = bool(cbackprop_os_saves(0))
    features["os_zmm"] = bool(cbackprop_os_saves(1))
    return features


def cpu_runs(build):
    """True when this CPU and OS can run the engine build ``build``."""
    if build == "baseline":
        return True
    features = cpu_features()
    return all(features[name] for name in BUILD_FEATURES[build]) and \
        features["os_zmm" if build == "avx512" else "os_ymm"]


def cpu_halves_512():
    """True on CPUs known to run each 512-bit vector instruction as two 256-bit
    halves (AMD Zen 4, family 19h with AVX-512): their AVX-512 FMA peak is
    their AVX2 one. The AVX-512 build stays the faster there (bench/README.md,
    "Which engine build"), with its ten-column tiles in half vectors."""
    return bool(cbackprop_halves_512())
