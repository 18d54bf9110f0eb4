/* Vectorised transcendentals over arrays, one source for every CPU class.
 *
 * Like tiles.h, written with GCC vector extensions and compiled once per
 * engine build (CB_VECTOR_BYTES from its row of the table in tiles.h), so
 * each build runs them on its own vector width. No libm call per element:
 * exp and expm1 are a Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a
 * polynomial in r (fitted: 11 terms in float64, 6 in float32), and a
 * scale by 2^n rounded once (one scalef on the AVX-512 build; elsewhere
 * two factors built from exponent bits, so that subnormal results round
 * once); sigmoid and tanh are written through them; log splits off the
 * exponent and sums the atanh series of the mantissa; erfc is two fitted
 * polynomials, the far one scaled by exp(-x²).
 *
 * The interface, for each dtype suffix (f64, f32); y may be x itself:
 *
 *   cb_vexp_<sfx>(n, x, y)      y = exp(x)
 *   cb_vexpm1_<sfx>(n, x, y)    y = exp(x) - 1, accurate near 0
 *   cb_vsigmoid_<sfx>(n, x, y)  y = 1 / (1 + exp(-x)), from exp(-|x|)
 *   cb_vtanh_<sfx>(n, x, y)     y = tanh(x) = u / (u + 2), u = expm1(2|x|), signed
 *   cb_vsilu_<sfx>(n, x, y)     y = x * sigmoid(x)
 *   cb_vlog_<sfx>(n, x, y)      y = log(x): x = m 2^k, k ln2 + 2 atanh((m-1)/(m+1))
 *   cb_vlog1p_<sfx>(n, x, y)    y = log(1 + x), accurate near 0
 *   cb_verfc_<sfx>(n, x, y)     y = erfc(x): 1 - x P(x²) near 0, else exp(-x²) R(|x|) (x > 0)
 *                               or 2 - exp(-x²) R(|x|) (x < 0)
 *   cb_vsqrt_<sfx>(n, x, y)     y = sqrt(x), correctly rounded (cb_root_by_newton picks how)
 *
 * and Adam's and RMSprop's updates, cb_vadam_<sfx> and cb_vrmsprop_<sfx>
 * (updates_template.h).
 *
 * NaN gives NaN, ±inf and overflow their limits, and results are within a
 * few ulp of the correctly rounded ones (tests/test_vmath.py sweeps each
 * function's range against mpmath).
 */
#ifndef CBACKPROP_VMATH_H
#define CBACKPROP_VMATH_H

#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "tiles.h"

/* Whether a 64-byte build has cb_vm_sqrt by Newton steps on the FMA units
 * (vmath_template.h): Adam's step 1.15 -> 0.68-0.72 ns a parameter more
 * than SGD's in float64 on an Intel Xeon, RMSprop's likewise (bench/README.md,
 * "Kept: Adam's (and RMSprop's) square root off the divider"). On a CPU
 * with whole 512-bit units `bench/thresholds.py CB_ROOT_BY_NEWTON=0 float64
 * sqrt,adam` times the two ways; on one that halves them, `halves_512=0`
 * times every root by Newton steps against the way it takes (vector
 * sqrt and float32 updates: the instruction; float64 updates: a third by
 * Newton steps), and `CB_ROOT_BY_NEWTON=0` against every root by the
 * instruction. */
#define CB_ROOT_BY_NEWTON 1
#if CB_ROOT_BY_NEWTON && CB_VECTOR_BYTES == 64 && defined(__AVX512F__)
#define CB_ROOT_NEWTON_BUILT 1
#else
#define CB_ROOT_NEWTON_BUILT 0
#endif

/* Whether this CPU takes that root. Not where each 512-bit instruction runs
 * as two halves (cb_halves_512, AMD Zen 4): there the Newton steps' FMAs
 * take the ports the rest of the update needs, while the divider has room
 * for the roots beside the divisions (Adam's update in float64 0.975 ->
 * 0.904 ns a parameter, float32 0.435 -> 0.320; bench/README.md). The
 * updates in float64 there take a third of their roots by Newton steps
 * (cb_update_roots, below). */
static inline int cb_root_by_newton(void) { return CB_ROOT_NEWTON_BUILT && !cb_halves_512; }

/* How the loops of Adam's and RMSprop's updates (updates_template.h) take
 * their square roots: all by the instruction, all by Newton steps, or one
 * vector in three by Newton steps and the others by the instruction. The
 * last is float64's on a CPU that halves 512-bit instructions, where a root
 * and a division per vector keep the divider busier than the FMA ports,
 * which have room for a third of the roots but not for all of them:
 * Adam's update 0.91 -> 0.73 ns a parameter on a Zen 4, RMSprop's 0.89 ->
 * 0.72 (one vector in two: 0.75-0.78; two in three: 0.85-0.88; float32
 * one in three 0.32, level with the instruction; bench/README.md, "Kept:
 * on Zen 4, a third of float64's roots by Newton steps"). Every way rounds
 * the same. */
enum { CB_ROOTS_BY_INSTRUCTION = 0, CB_ROOTS_BY_NEWTON = 1, CB_ROOTS_ONE_IN_THREE_BY_NEWTON = 2 };

#define CB_VM_CAT_(a, b) a##_##b
#define CB_VM_CAT(a, b) CB_VM_CAT_(a, b)

#define CB_VM_DOUBLE 1
#define CB_REAL double
#define CB_VM_INT int64_t
#define CB_VM_SFX f64
#include "vmath_template.h"
#include "updates_template.h"
#undef VM_LANES
#undef VMI
#undef VM
#undef CB_VM_
#undef CB_VM_DOUBLE
#undef CB_REAL
#undef CB_VM_INT
#undef CB_VM_SFX

#define CB_VM_DOUBLE 0
#define CB_REAL float
#define CB_VM_INT int32_t
#define CB_VM_SFX f32
#include "vmath_template.h"
#include "updates_template.h"
#undef VM_LANES
#undef VMI
#undef VM
#undef CB_VM_
#undef CB_VM_DOUBLE
#undef CB_REAL
#undef CB_VM_INT
#undef CB_VM_SFX

#endif
