/* The functions of vmath.h for one dtype: included once per dtype with
 * CB_REAL, CB_VM_INT (the integer of its width), CB_VM_SFX and CB_VM_DOUBLE
 * defined. Vector comparisons give integer vectors of all-ones or zero
 * lanes; C has no vector ?:, so a choice between two vectors is a bitwise
 * select (cb_vm_select).
 */
#define CB_VM_(name) CB_VM_CAT(name, CB_VM_SFX)
#define VM CB_VM_(cb_vm)
#define VMI CB_VM_(cb_vmi)
#define VM_LANES ((ptrdiff_t)(CB_VECTOR_BYTES / sizeof(CB_REAL)))

typedef CB_REAL VM __attribute__((vector_size(CB_VECTOR_BYTES), aligned(sizeof(CB_REAL)), may_alias));
typedef CB_VM_INT VMI __attribute__((vector_size(CB_VECTOR_BYTES), aligned(sizeof(CB_REAL)), may_alias));

#if CB_VM_DOUBLE
#define VM_MANTISSA_BITS 52
#define VM_PS_PD pd                       /* the suffix of its x86 intrinsics */
#define VM_KORTESTZ _kortestz_mask8_u8    /* both masks of a 64-byte vector 0 */
#define VM_EXPONENT_BIAS 1023
#define VM_SIGN_BIT ((CB_VM_INT)1 << 63)
#define VM_SHIFTER 0x1.8p52            /* adding it rounds to an integer, kept in the low bits */
#define VM_LN2_HI 6.93147180369123816490e-01   /* ln 2 in two parts (fdlibm's): */
#define VM_LN2_LO 1.90821492927058770002e-10   /* n * LN2_HI is exact for |n| < 2^11 */
#define VM_EXP_MAX 709.79                 /* exp above: inf */
#define VM_EXP_MIN (-760.0)       /* below every result's subnormals, x exp(x) included */
#define VM_TANH_SATURATES 20.0            /* tanh(20) rounds to 1 */
/* exp(r) = 1 + r Q(r) and expm1(r) = r Q(r), Q(r) ~ expm1(r) / r on
 * |r| <= ln2/2: a polynomial of VM_TERMS terms, highest degree first,
 * ending the table (whose last entry, 1, is not one of them). float64's is
 * the Chebyshev interpolant of 11 terms (mpmath.chebyfit at 50 digits,
 * then rounded): relative error 2.4e-17, a fifth of half an ulp; Taylor's
 * series needs 14 terms for as little, each one a step more on the chain
 * of every exp-based function. */
#define VM_TERMS 11
static const CB_REAL CB_VM_(cb_vm_q_terms)[16] = {
    0, 0, 0, 0,
    2.510520637395701e-08, 2.7626357241447223e-07, 2.7557255425746435e-06,
    2.4801504346997686e-05, 0.00019841269874800493, 0.0013888888932488599,
    0.008333333333326141, 0.04166666666657314, 0.1666666666666667, 0.5000000000000006,
    1.0, 1.0};
#else
#define VM_MANTISSA_BITS 23
#define VM_PS_PD ps
#define VM_KORTESTZ _kortestz_mask16_u8
#define VM_EXPONENT_BIAS 127
#define VM_SIGN_BIT ((CB_VM_INT)1 << 31)
#define VM_SHIFTER 0x1.8p23f
#define VM_LN2_HI 0.693145751953125f
#define VM_LN2_LO 1.428606765330187e-06f
#define VM_EXP_MAX 88.73f
#define VM_EXP_MIN (-112.0f)
#define VM_TANH_SATURATES 10.0f           /* tanh(10) rounds to 1 */
/* Q as for float64, 6 terms fitted for the least largest relative error
 * (reweighted least squares in float64): 1.1e-8, a fifth of float32's half
 * ulp (Taylor's first 6 terms leave 3.4e-7 out, its first 8 5.8e-10). */
#define VM_TERMS 6
static const CB_REAL CB_VM_(cb_vm_q_terms)[16] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0,
    0.0013888803077861667f, 0.00836906861513853f, 0.041667137295007706f,
    0.16666506230831146f, 0.4999999701976776f, 1.0f, 1.0f};
#endif
#define VM_LOG2E ((CB_REAL)1.4426950408889634)
#define VM_SQRT2 ((CB_REAL)1.4142135623730951)
#if CB_VM_DOUBLE
/* log(m) = 2 atanh(s) = 2 s Σ_{k < VM_LOG_TERMS} s^2k / (2k+1), |s| <= 3 - 2 sqrt 2 */
#define VM_LOG_TERMS 12
#define VM_SUBNORMAL_SCALE 0x1p54
#define VM_SUBNORMAL_SHIFT 54
#define VM_MIN_NORMAL 0x1p-1022
#define VM_LARGEST 0x1.fffffffffffffp1023
#define VM_ROOT_SMALLEST 0x1p-900         /* cb_vm_sqrt's Newton steps from here up */
#define VM_ROOT_NEWTON_STEPS 2
#define VM_SCALAR_SQRT __builtin_sqrt
/* erf near 0 and erfc beyond: see cb_vm_erfc. erfc(27.3) rounds to 0.
 * Highest degree first. erf's is a Chebyshev interpolant fitted at 200 bits
 * (its error is below 1e-17); erfc's was fitted by least squares at 200
 * bits, its coefficients rounded from the highest degree down, each
 * rounding absorbed by refitting the lower ones, and the constant term
 * kept to twice the precision (VM_ERFC_FAR_LOW): it is most of H. */
#define VM_ERFC_UNDERFLOWS 27.3
#define VM_ERFC_SHIFT 1.0
#define VM_ERFC_MID 0.3033821302372539
#define VM_ERFC_INV_HALF 3.7306967984934087
#define VM_SPLIT_MASK (~(CB_VM_INT)0 << 27)   /* keeps 26 significant bits */
#define VM_ERF_NEAR_TERMS 11
#define VM_ERFC_FAR_TERMS 26
#define VM_ERFC_FAR_LOW 4.941360664616549e-17   /* the rest of the constant term */
static const CB_REAL CB_VM_(cb_vm_erf_near)[VM_ERF_NEAR_TERMS] = {
    1.1472499701094691e-08, -1.5940066854661717e-07, 1.643068417974155e-06,
    -1.4924196305569617e-05, 0.00012055289567541706, -0.0008548326188759752,
    0.005223977615420539, -0.026866170644428485, 0.11283791670952596, -0.37612638903183715,
    1.1283791670955126};
static const CB_REAL CB_VM_(cb_vm_erfc_far)[VM_ERFC_FAR_TERMS] = {
    2.0504353134774076e-10, -3.6305733431388967e-10, -1.1212308002004522e-09,
    3.0961617970222093e-09, -1.7802338351912833e-10, -7.563972607531789e-09,
    1.4320121844924776e-08, -1.5181854570808684e-08, -1.0051459942594315e-08,
    9.871521951172255e-08, -2.2739894557951919e-07, 1.6114256641096272e-07,
    6.222627616046495e-07, -2.4026513952005713e-06, 3.1821070132051047e-06,
    4.219387953297459e-06, -2.7983625815817817e-05, 4.5509091031747875e-05,
    6.0692907816520654e-05, -0.0004431261611208819, 0.0005515388317239864,
    0.002453065253967781, -0.009677902684376691, -0.014712669339047683,
    0.1604283745645303, 0.7484577524473923};
#else
#define VM_LOG_TERMS 6
#define VM_SUBNORMAL_SCALE 0x1p25f
#define VM_SUBNORMAL_SHIFT 25
#define VM_MIN_NORMAL 0x1p-126f
#define VM_LARGEST 0x1.fffffep127f
#define VM_ROOT_SMALLEST 0x1p-90f
#define VM_ROOT_NEWTON_STEPS 1
#define VM_SCALAR_SQRT __builtin_sqrtf
#define VM_ERFC_UNDERFLOWS 10.1f        /* erfc(10.1) rounds to 0; the tables as float64's */
#define VM_ERFC_SHIFT 1.0f
#define VM_ERFC_MID 0.33075931668281555f
#define VM_ERFC_INV_HALF 4.155080318450928f
#define VM_SPLIT_MASK (~(CB_VM_INT)0 << 12)   /* keeps 12 significant bits */
#define VM_ERF_NEAR_TERMS 7
#define VM_ERFC_FAR_TERMS 10
#define VM_ERFC_FAR_LOW 1.6665111957081535e-08f
static const CB_REAL CB_VM_(cb_vm_erf_near)[VM_ERF_NEAR_TERMS] = {
    9.470462100580335e-05f, -0.0008356928010471165f, 0.005216789431869984f,
    -0.02686477266252041f, 0.1128377839922905f, -0.37612637877464294f, 1.128379225730896f};
static const CB_REAL CB_VM_(cb_vm_erfc_far)[VM_ERFC_FAR_TERMS] = {
    -7.263306997629115e-06f, 1.3049625522398856e-05f, 4.0091956179821864e-05f,
    -0.00020643127209041268f, 0.00017305447545368224f, 0.001734769670292735f,
    -0.006244765594601631f, -0.014123495668172836f, 0.14108212292194366f,
    0.7646797299385071f};
#endif
#define VM_ERF_NEAR_END ((CB_REAL)0.75)   /* where erfc's two branches meet */

static inline VM CB_VM_(cb_vm_splat)(CB_REAL x) { return x - (VM){0}; }

static inline VM CB_VM_(cb_vm_select)(VMI mask, VM if_set, VM if_clear) {
    return (VM)(((VMI)if_set & mask) | ((VMI)if_clear & ~mask));
}

/* x clamped to at most (at least) limit, NaN staying NaN: one min (max)
 * instruction where the build has it, which takes its second operand when
 * either is NaN. Written as a compare and a select, the clamp costs three
 * operations on the critical path of every exp-based function. */
#if CB_VECTOR_BYTES == 64 && defined(__AVX512F__)
#define VM_X86(name) CB_VM_CAT(CB_VM_CAT(_mm512, name), VM_PS_PD)
#elif CB_VECTOR_BYTES == 32 && defined(__AVX__)
#define VM_X86(name) CB_VM_CAT(CB_VM_CAT(_mm256, name), VM_PS_PD)
#elif CB_VECTOR_BYTES == 16 && defined(__SSE2__)
#define VM_X86(name) CB_VM_CAT(CB_VM_CAT(_mm, name), VM_PS_PD)
#endif
#ifdef VM_X86
/* The intrinsic's own vector type, as returned by its setzero. */
#define VM_MIN_MAX(op, limit, x) \
    (VM)VM_X86(op)((__typeof__(VM_X86(setzero)()))(limit), (__typeof__(VM_X86(setzero)()))(x))
#endif
static inline VM CB_VM_(cb_vm_at_most)(VM x, CB_REAL limit) {
#ifdef VM_MIN_MAX
    return VM_MIN_MAX(min, CB_VM_(cb_vm_splat)(limit), x);
#else
    return CB_VM_(cb_vm_select)((VMI)(x > limit), CB_VM_(cb_vm_splat)(limit), x);
#endif
}
static inline VM CB_VM_(cb_vm_at_least)(VM x, CB_REAL limit) {
#ifdef VM_MIN_MAX
    return VM_MIN_MAX(max, CB_VM_(cb_vm_splat)(limit), x);
#else
    return CB_VM_(cb_vm_select)((VMI)(x < limit), CB_VM_(cb_vm_splat)(limit), x);
#endif
}

/* sqrt(x), correctly rounded (as the sqrt instruction). The AVX-512 build
 * (CB_ROOT_BY_NEWTON, vmath.h) can compute it on the FMA units instead of
 * the divider (cb_root_by_newton says where it does; for Adam's and
 * RMSprop's loops, cb_update_roots), which also runs every
 * division and, on an Intel Xeon in float64, takes 16 cycles per vector
 * for each: the square root alone then runs twice as fast, and
 * Adam's step (one of each per parameter) costs 0.70 ns a parameter more
 * than SGD's instead of 1.15 on an Intel Xeon. From the 14-bit estimate of
 * 1/sqrt(x): two (float32: one) coupled Newton steps s -> sqrt(x),
 * h -> 1/(2 sqrt(x)), and a last correction s + (x - s²) h, which rounds
 * once to the nearest. Each step is a written FMA, not left to the
 * compiler's contraction: the correction needs x - s² exact (with
 * -ffp-contract=off a harness got a sixth of float32's roots wrong).
 * tests/test_vmath.py checks it bit for bit against the instruction (every
 * float32 mantissa, every binade sampled, float64 roots next to a rounding
 * midpoint). x - s² stays exact down to about 2^-970 (float64) and 2^-103
 * (float32); lanes below VM_ROOT_SMALLEST, with a margin, and inf, NaN and
 * negative ones are taken by the instruction (lanes of 0 come out right
 * from the Newton steps, whose estimate is then of VM_ROOT_SMALLEST's). */
#if CB_ROOT_NEWTON_BUILT
static inline __attribute__((always_inline)) VM CB_VM_(cb_vm_sqrt_newton)(VM x) {
    typedef __typeof__(VM_X86(setzero)()) native;
#define VM_FMA(op, a, b, c) ((VM)VM_X86(op)((native)(a), (native)(b), (native)(c)))
    VM estimate = (VM)VM_X86(rsqrt14)((native)CB_VM_(cb_vm_at_least)(x, VM_ROOT_SMALLEST));
    VM s = x * estimate, h = (CB_REAL)0.5 * estimate, t;
    for (int step = 0; step < VM_ROOT_NEWTON_STEPS; step++) {
        t = VM_FMA(fnmadd, s, h, CB_VM_(cb_vm_splat)((CB_REAL)0.5));   /* 0.5 - s h */
        s = VM_FMA(fmadd, s, t, s);
        h = VM_FMA(fmadd, h, t, h);
    }
    s = VM_FMA(fmadd, VM_FMA(fnmadd, s, s, x), h, s);   /* s + (x - s s) h */
#undef VM_FMA
    /* The lanes left to the instruction (NaN, inf, and those below
     * VM_ROOT_SMALLEST but zeros), as two mask registers tested by one
     * kortest: written as vector comparisons, gcc turns the test into a
     * vector and back; a knot or an or of the masks is one operation more
     * on the ports Adam's loop is bound by. */
#define VM_CMP_MASK CB_VM_CAT(VM_X86(cmp), mask)
#define VM_MASK_CMP_MASK CB_VM_CAT(CB_VM_CAT(CB_VM_CAT(_mm512, mask_cmp), VM_PS_PD), mask)
    native lanes = (native)x;
    __typeof__(VM_CMP_MASK(lanes, lanes, _CMP_EQ_OQ)) large, small;
    large = VM_CMP_MASK(lanes, (native)CB_VM_(cb_vm_splat)(VM_LARGEST), _CMP_NLE_UQ);
    small = VM_MASK_CMP_MASK(VM_CMP_MASK(lanes, VM_X86(setzero)(), _CMP_NEQ_OQ), lanes,
                             (native)CB_VM_(cb_vm_splat)(VM_ROOT_SMALLEST), _CMP_LT_OQ);
    if (__builtin_expect(!VM_KORTESTZ(large, small), 0))
        s = (VM)CB_VM_CAT(CB_VM_CAT(_mm512, mask_sqrt), VM_PS_PD)((native)s, large | small,
                                                                    lanes);
#undef VM_MASK_CMP_MASK
#undef VM_CMP_MASK
    return s;
}
#endif

/* sqrt(x) by the instruction (lane by lane where the build has no vector one). */
static inline __attribute__((always_inline)) VM CB_VM_(cb_vm_sqrt_instruction)(VM x) {
#if defined(VM_X86)
    typedef __typeof__(VM_X86(setzero)()) native;
    return (VM)VM_X86(sqrt)((native)x);
#else
    for (int lane = 0; lane < VM_LANES; lane++)
        x[lane] = VM_SCALAR_SQRT(x[lane]);
    return x;
#endif
}

/* sqrt(x) by the Newton steps when NEWTON (a constant; from cb_root_by_newton
 * or cb_update_roots at a loop's entry, so that no loop tests it) and the
 * build has them. */
static inline __attribute__((always_inline)) VM CB_VM_(cb_vm_sqrt)(const int NEWTON, VM x) {
#if CB_ROOT_NEWTON_BUILT
    if (NEWTON)
        return CB_VM_(cb_vm_sqrt_newton)(x);
#else
    (void)NEWTON;
#endif
    return CB_VM_(cb_vm_sqrt_instruction)(x);
}

/* The integer n of a reduction (cb_vm_reduce), as cb_vm_scale takes it:
 * on the AVX-512 build its value in the dtype, which scalef reads as it
 * is (bench/README.md, "Kept: 2^n by scalef"); elsewhere integer lanes,
 * moved into exponent bits. */
#if CB_VECTOR_BYTES == 64 && defined(__AVX512F__)
#define VM_SCALEF 1
#define VME VM
#else
#define VM_SCALEF 0
#define VME VMI
#endif

/* That n, from k (the integer in the dtype) and t = k + VM_SHIFTER (whose
 * low bits hold it). */
static inline VME CB_VM_(cb_vm_exponent)(VM k, VM t) {
#if VM_SCALEF
    (void)t;
    return k;
#else
    (void)k;
    return (VMI)t - (VMI)CB_VM_(cb_vm_splat)(VM_SHIFTER);
#endif
}

/* x clamped to [VM_EXP_MIN, VM_EXP_MAX] (NaN stays NaN), reduced to
 * r = x - n ln2 with n an integer; returns r, n in *n. */
static inline VM CB_VM_(cb_vm_reduce)(VM x, VME* n) {
    x = CB_VM_(cb_vm_at_least)(CB_VM_(cb_vm_at_most)(x, VM_EXP_MAX), VM_EXP_MIN);
    VM t = x * VM_LOG2E + VM_SHIFTER;
    VM k = t - VM_SHIFTER;
    *n = CB_VM_(cb_vm_exponent)(k, t);
    return (x - k * VM_LN2_HI) - k * VM_LN2_LO;
}

/* p 2^n for integer n in [2 - 2 * bias, 2 * bias] (the callers' n lie well
 * inside), rounded once: by two factors whose product is 2^n, each a
 * normal number (p times the first is exact), or on the AVX-512 build by
 * one scalef, which rounds the same exact product once. */
static inline VM CB_VM_(cb_vm_scale)(VM p, VME n) {
#if VM_SCALEF
    typedef __typeof__(VM_X86(setzero)()) native;
    return (VM)VM_X86(scalef)((native)p, (native)n);
#else
    VMI half = n >> 1;
    VM first = (VM)((half + VM_EXPONENT_BIAS) << VM_MANTISSA_BITS);
    VM second = (VM)((n - half + VM_EXPONENT_BIAS) << VM_MANTISSA_BITS);
    return p * first * second;
#endif
}

/* Q(r) by Horner over the table's entries 15 - VM_TERMS .. 14, highest degree first. */
static inline VM CB_VM_(cb_vm_q)(VM r) {
    const CB_REAL* c = CB_VM_(cb_vm_q_terms) + 15 - VM_TERMS;
    VM q = CB_VM_(cb_vm_splat)(c[0]);
    for (int k = 1; k < VM_TERMS; k++)
        q = q * r + c[k];
    return q;
}

/* 2 Q(2h), by the same Horner steps as cb_vm_q(2h) with every value
 * scaled by a power of two (the coefficient of degree d by 2^(d+1)): the
 * same roundings, so cb_vm_q_half(h) * h is cb_vm_q(r) * r to the bit for
 * r = 2h, without r. */
static inline VM CB_VM_(cb_vm_q_half)(VM h) {
    const CB_REAL* c = CB_VM_(cb_vm_q_terms) + 15 - VM_TERMS;
    VM q = CB_VM_(cb_vm_splat)(c[0] * (CB_REAL)(1 << VM_TERMS));
    for (int k = 1; k < VM_TERMS; k++)
        q = q * h + c[k] * (CB_REAL)(1 << (VM_TERMS - k));
    return q;
}

/* 2^n for n within the normal exponents: cb_vm_scale's one scalef where
 * the build has it, else one factor's exponent bits (cb_vm_scale's two are
 * for the subnormal and overflowing results this range leaves out). */
static inline VM CB_VM_(cb_vm_power_of_two)(VME n) {
#if VM_SCALEF
    return CB_VM_(cb_vm_scale)(CB_VM_(cb_vm_splat)(1), n);
#else
    return (VM)((n + VM_EXPONENT_BIAS) << VM_MANTISSA_BITS);
#endif
}

static inline VM CB_VM_(cb_vm_exp)(VM x) {
    VME n;
    VM r = CB_VM_(cb_vm_reduce)(x, &n);
    VM p = CB_VM_(cb_vm_q)(r) * r + 1;
    return CB_VM_(cb_vm_scale)(p, n);
}

static inline VM CB_VM_(cb_vm_expm1)(VM x) {
    VME n;
    VM r = CB_VM_(cb_vm_reduce)(x, &n);
    VM p = CB_VM_(cb_vm_q)(r) * r;     /* expm1(r) */
    /* expm1(x) = 2^n expm1(r) + (2^n - 1), with 2^n - 1 exact; where 2^n
     * dwarfs the 1 (or is beyond the range), exp(x) - 1 loses nothing. */
    VM power = CB_VM_(cb_vm_scale)(CB_VM_(cb_vm_splat)(1), n);
    VM moderate = CB_VM_(cb_vm_scale)(p, n) + (power - 1);
    VM large = CB_VM_(cb_vm_scale)(p + 1, n) - 1;
    VM result = CB_VM_(cb_vm_select)((VMI)(n > VM_MANTISSA_BITS + 2), large, moderate);
    return CB_VM_(cb_vm_select)((VMI)(n == 0), p, result);   /* -0 stays -0 */
}

static inline VM CB_VM_(cb_vm_abs)(VM x) { return (VM)((VMI)x & ~VM_SIGN_BIT); }

/* log(x) for x > 0 finite: x = m 2^k with m in [sqrt(1/2), sqrt(2)), then
 * k ln2 + 2 atanh((m - 1) / (m + 1)); subnormal x scaled up first. The
 * other inputs (0, negative, inf, NaN) are the caller's. */
static inline VM CB_VM_(cb_vm_log_positive)(VM x) {
    VMI subnormal = (VMI)(x < VM_MIN_NORMAL);
    x = CB_VM_(cb_vm_select)(subnormal, x * VM_SUBNORMAL_SCALE, x);
    VMI bits = (VMI)x;
    VMI k = ((bits >> VM_MANTISSA_BITS) & (2 * VM_EXPONENT_BIAS + 1)) - VM_EXPONENT_BIAS;
    k -= subnormal & VM_SUBNORMAL_SHIFT;
    VM m = (VM)((bits & (((CB_VM_INT)1 << VM_MANTISSA_BITS) - 1))
                | ((CB_VM_INT)VM_EXPONENT_BIAS << VM_MANTISSA_BITS));   /* [1, 2) */
    VMI big = (VMI)(m > VM_SQRT2);
    m = CB_VM_(cb_vm_select)(big, m * (CB_REAL)0.5, m);
    k -= big;                                   /* big lanes are -1: k + 1 */
    VM s = (m - 1) / (m + 1);
    VM s2 = s * s;
    VM series = CB_VM_(cb_vm_splat)((CB_REAL)1 / (2 * VM_LOG_TERMS - 1));
    for (int j = VM_LOG_TERMS - 2; j >= 0; j--)
        series = series * s2 + (CB_REAL)1 / (2 * j + 1);
    VM kf = (VM)(k + (VMI)CB_VM_(cb_vm_splat)(VM_SHIFTER)) - VM_SHIFTER;   /* k as a real */
    return kf * VM_LN2_HI + ((s + s) * series + kf * VM_LN2_LO);
}

static inline VM CB_VM_(cb_vm_log)(VM x) {
    VM result = CB_VM_(cb_vm_log_positive)(x);
    VM inf = CB_VM_(cb_vm_splat)((CB_REAL)__builtin_inf());
    result = CB_VM_(cb_vm_select)((VMI)(x == inf), inf, result);
    result = CB_VM_(cb_vm_select)((VMI)(x == 0), -inf, result);
    result = CB_VM_(cb_vm_select)((VMI)(x != x), x, result);                /* NaN */
    return CB_VM_(cb_vm_select)((VMI)(x < 0), CB_VM_(cb_vm_splat)((CB_REAL)__builtin_nan("")), result);
}

/* log1p(x) = log(u) + (x - (u - 1)) / u, u = 1 + x: the correction restores
 * what rounding 1 + x lost. */
static inline VM CB_VM_(cb_vm_log1p)(VM x) {
    VM u = 1 + x;
    VM result = CB_VM_(cb_vm_log)(u) + (x - (u - 1)) / u;
    VM inf = CB_VM_(cb_vm_splat)((CB_REAL)__builtin_inf());
    result = CB_VM_(cb_vm_select)((VMI)(u == inf), u, result);      /* x = inf, or u overflowed */
    result = CB_VM_(cb_vm_select)((VMI)(u == 1), x, result);        /* tiny x: log1p(x) = x */
    return CB_VM_(cb_vm_select)((VMI)(u == 0), -inf, result);
}

/* e = exp(-|x|) (never overflows) and r = 1 / (1 + e); x < 0 lanes of
 * the result are factor * e * r, scaled by 2^n last, so that a subnormal
 * result is rounded once. */
static inline VM CB_VM_(cb_vm_logistic)(VM x, VM factor) {
    VME n;
    VM reduced = CB_VM_(cb_vm_reduce)((VM)((VMI)x | VM_SIGN_BIT), &n);
    VM p = CB_VM_(cb_vm_q)(reduced) * reduced + 1;
    VM r = 1 / (1 + CB_VM_(cb_vm_scale)(p, n));
    VM negative = CB_VM_(cb_vm_scale)(p * (factor * r), n);
    return CB_VM_(cb_vm_select)((VMI)(x >= 0), factor * r, negative);
}

static inline VM CB_VM_(cb_vm_sigmoid)(VM x) {
    return CB_VM_(cb_vm_logistic)(x, CB_VM_(cb_vm_splat)(1));
}

static inline VM CB_VM_(cb_vm_tanh)(VM x) {
    VM a = CB_VM_(cb_vm_abs)(x);
    a = CB_VM_(cb_vm_at_most)(a, VM_TANH_SATURATES);
    /* u = expm1(2a) with 0 <= 2a <= 2 VM_TANH_SATURATES: no clamping, and
     * 2^k is one normal number (k < 64); u = 2^k expm1(r) + (2^k - 1),
     * 2a = k ln2 + r. 2a is never formed: a times 2 log2(e), and h = r / 2
     * from a and ln2 / 2, are the same values (halved) and roundings, and
     * cb_vm_q_half(h) h is expm1(r)'s polynomial (bench/README.md,
     * "Kept: tanh in two operations fewer"). */
    VM t = a * (2 * VM_LOG2E) + VM_SHIFTER;
    VM k = t - VM_SHIFTER;
#if CB_VM_DOUBLE
    VM h = (a - k * (VM_LN2_HI / 2)) - k * (VM_LN2_LO / 2);
#else
    /* ln2 rounded to float32 once: r is off by k (at most 29) times
     * 1.9e-9, which moves tanh by at most 2e-9 of itself (2 (u+1) /
     * (u (u+2)) per unit of r is largest at k = 1), and the second FMA
     * goes. */
    VM h = a - k * (CB_REAL)(0.6931471805599453 / 2);
#endif
    VM power = CB_VM_(cb_vm_power_of_two)(CB_VM_(cb_vm_exponent)(k, t));
    VM u = (CB_VM_(cb_vm_q_half)(h) * h) * power + (power - 1);
    VM tanh_a = u / (u + 2);
    return (VM)((VMI)tanh_a | ((VMI)x & VM_SIGN_BIT));
}

/* x σ(x). Below VM_EXP_MIN, where exp's argument is clamped, x e^x has
 * underflowed: x * 0 there (-0; NaN at -inf, as torch's), not the factor x
 * scaled by the clamped exponent (-8.6e-31 at x = -1e300). */
static inline VM CB_VM_(cb_vm_silu)(VM x) {
    VM result = CB_VM_(cb_vm_logistic)(x, x);
    return CB_VM_(cb_vm_select)((VMI)(x < VM_EXP_MIN), x * 0, result);
}

/* Horner's rule over a table, highest degree first. */
static inline VM CB_VM_(cb_vm_polynomial)(VM x, const CB_REAL* c, int terms) {
    VM p = CB_VM_(cb_vm_splat)(c[0]);
    for (int k = 1; k < terms; k++)
        p = p * x + c[k];
    return p;
}

/* erfc(x). Near 0 (|x| < VM_ERF_NEAR_END) it is 1 - erf(x), erf(x) = x P(x²):
 * erf stays below 0.72 there, so at most a bit is lost (an ulp of erf near
 * 0.71 is two of erfc near 0.29). Beyond, for a = |x|,
 * erfc(a) = exp(-a²) t H(s), where t = 1 / (VM_ERFC_SHIFT + a) and
 * s = (t - mid) / half maps [VM_ERF_NEAR_END, VM_ERFC_UNDERFLOWS] onto
 * [-1, 1]. H = erfc(a) exp(a²) / t is nearly flat (0.89 down to 0.59, 1/√π
 * in the limit), so
 * the rounding of s costs a fifth of an ulp; t itself is a factor of the
 * result, so the rounding of VM_ERFC_SHIFT + a is put back into it (its
 * error found by a two-sum). The rounding of a² is not
 * harmless here: exp(-a²) would be off by a² eps relative, hundreds of ulp
 * near the underflow. So a² = square + error (a split into halves, as in
 * Dekker's product: high² and 2 high low are exact, low² is rounded far
 * below an ulp of the error), and exp(-a²) is
 * exp's reduction of -square with the error taken off the reduced argument
 * r. exp(r) = 1 + r Q(r) is never formed: t H + t H r Q(r) rounds once
 * where (1 + r Q(r)) t H rounded twice. As in cb_vm_logistic, the scaling
 * by 2^n comes last, so a subnormal result rounds once.
 * Negative x: 2 - erfc(a). Within 4 ulp over the whole range
 * (tests/test_vmath.py). */
static inline VM CB_VM_(cb_vm_erfc)(VM x) {
    VM near = 1 - x * CB_VM_(cb_vm_polynomial)(x * x, CB_VM_(cb_vm_erf_near), VM_ERF_NEAR_TERMS);
    VM a = CB_VM_(cb_vm_at_most)(CB_VM_(cb_vm_abs)(x), VM_ERFC_UNDERFLOWS);
    VM high = (VM)((VMI)a & VM_SPLIT_MASK);
    VM low = a - high;
    VM square = a * a;
    VM square_error = ((high * high - square) + 2 * high * low) + low * low;
    VM d = VM_ERFC_SHIFT + a;
    VM d_shift = d - a;                  /* Knuth's: d + d_error = shift + a exactly */
    VM d_error = (VM_ERFC_SHIFT - d_shift) + (a - (d - d_shift));
    VM t = 1 / d;
    t = t - t * t * d_error;
    VM s = (t - VM_ERFC_MID) * VM_ERFC_INV_HALF;
    VM h = CB_VM_(cb_vm_polynomial)(s, CB_VM_(cb_vm_erfc_far), VM_ERFC_FAR_TERMS - 1) * s;
    h = (h + VM_ERFC_FAR_LOW) + CB_VM_(cb_vm_erfc_far)[VM_ERFC_FAR_TERMS - 1];
    VME n;
    VM r = CB_VM_(cb_vm_reduce)(-square, &n) - square_error;
    VM th = t * h;
    VM far = CB_VM_(cb_vm_scale)(th + th * (CB_VM_(cb_vm_q)(r) * r), n);
    far = CB_VM_(cb_vm_select)((VMI)(x < 0), 2 - far, far);
    return CB_VM_(cb_vm_select)((VMI)(a < VM_ERF_NEAR_END), near, far);
}

/* y[i] = f(x[i]) for i < n: whole vectors, then the tail through a padded one. */
#define CB_VM_ARRAY(name)                                                              \
    static inline void CB_VM_(cb_v##name)(ptrdiff_t n, const CB_REAL* x, CB_REAL* y) { \
        ptrdiff_t i = 0;                                                               \
        for (; i + VM_LANES <= n; i += VM_LANES)                                       \
            *(VM*)(y + i) = CB_VM_(cb_vm_##name)(*(const VM*)(x + i));                 \
        if (i < n) {                                                                   \
            VM tail = {0};                                                             \
            memcpy(&tail, x + i, (size_t)(n - i) * sizeof(CB_REAL));                   \
            tail = CB_VM_(cb_vm_##name)(tail);                                         \
            memcpy(y + i, &tail, (size_t)(n - i) * sizeof(CB_REAL));                   \
        }                                                                              \
    }
CB_VM_ARRAY(exp)
CB_VM_ARRAY(expm1)
CB_VM_ARRAY(sigmoid)
CB_VM_ARRAY(tanh)
CB_VM_ARRAY(silu)
CB_VM_ARRAY(log)
CB_VM_ARRAY(log1p)
CB_VM_ARRAY(erfc)
#if CB_ROOT_NEWTON_BUILT
CB_VM_ARRAY(sqrt_newton)
#endif
CB_VM_ARRAY(sqrt_instruction)
#undef CB_VM_ARRAY

static inline void CB_VM_(cb_vsqrt)(ptrdiff_t n, const CB_REAL* x, CB_REAL* y) {
#if CB_ROOT_NEWTON_BUILT
    if (cb_root_by_newton()) {
        CB_VM_(cb_vsqrt_newton)(n, x, y);
        return;
    }
#endif
    CB_VM_(cb_vsqrt_instruction)(n, x, y);
}

#undef VM_MIN_MAX
#undef VM_X86
#undef VM_SCALEF
#undef VME
#undef VM_MANTISSA_BITS
#undef VM_PS_PD
#undef VM_KORTESTZ
#undef VM_EXPONENT_BIAS
#undef VM_SIGN_BIT
#undef VM_SHIFTER
#undef VM_LN2_HI
#undef VM_LN2_LO
#undef VM_EXP_MAX
#undef VM_EXP_MIN
#undef VM_TANH_SATURATES
#undef VM_TERMS
#undef VM_LOG2E
#undef VM_SQRT2
#undef VM_LOG_TERMS
#undef VM_SUBNORMAL_SCALE
#undef VM_SUBNORMAL_SHIFT
#undef VM_MIN_NORMAL
#undef VM_LARGEST
#undef VM_ROOT_SMALLEST
#undef VM_ROOT_NEWTON_STEPS
#undef VM_SCALAR_SQRT
#undef VM_ERFC_UNDERFLOWS
#undef VM_ERFC_SHIFT
#undef VM_ERFC_MID
#undef VM_ERFC_INV_HALF
#undef VM_SPLIT_MASK
#undef VM_ERF_NEAR_TERMS
#undef VM_ERFC_FAR_TERMS
#undef VM_ERFC_FAR_LOW
#undef VM_ERF_NEAR_END
