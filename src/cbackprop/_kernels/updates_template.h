/* The updates of the optimizers with two state buffers, Adam and RMSprop,
 * over an array for one dtype, written on the vectors of vmath_template.h
 * (included after it, inside the same dtype block): their square root is
 * cb_vm_sqrt, which the AVX-512 build runs on the FMA units for all the
 * vectors or a third of them, as cb_update_roots says (vmath.h's
 * CB_ROOTS_...), leaving the division and the other roots to the divider.
 * optimizers.pxi's adam_range and rmsprop_range compute the factors and
 * call cb_vadam / cb_vrmsprop.
 *
 * The arithmetic, element by element, as written (an FMA wherever the
 * build contracts a product and a sum), from the state a, b:
 *   g  = clip(g)                when factors->clip: g * scale in [-limit, limit]
 *   g  = g + decay p            Adam: when decay is not 0 in the dtype (as the
 *                               reference); RMSprop: always
 *   Adam (a = m, b = v):
 *     m' = keep1 m + add1 g                     keep1 = beta1, add1 = 1 - beta1
 *     v' = keep2 v + add2 g g                   keep2 = beta2, add2 = 1 - beta2
 *     p' = p - rate m' / (sqrt(v') root_scale + eps)
 *   RMSprop (a = square average v, b = momentum buffer):
 *     v' = keep2 v + add2 g g                   keep2 = alpha, add2 = 1 - alpha
 *     step = g / (sqrt(v') + eps)
 *     with momentum: buf' = momentum buf + step, p' = p - rate buf'
 *     without:       buf' = buf,                 p' = p - rate step
 * with p' written over g and a', b' to a_out, b_out (each may be its input:
 * every element is read before it is written). Returns whether every p',
 * a' and b' is finite.
 */
#ifndef CB_UPDATE_FACTORS_DEFINED
#define CB_UPDATE_FACTORS_DEFINED
enum { CB_UPDATE_ADAM = 1, CB_UPDATE_RMSPROP = 2 };   /* optimizers.pxi's codes */
/* Each already rounded to the dtype it is used in (a float32 step's values
 * are floats held in doubles), but momentum, which the loop rounds where it
 * multiplies and tests for 0 as given; RMSprop leaves keep1, add1 and
 * root_scale out. */
typedef struct {
    double rate, keep1, add1, keep2, add2, root_scale, eps, momentum;
    double decay, scale, limit;
    int clip;
} cb_update_factors;
#endif

/* The update in two halves, split at the division: the loop below runs the
 * first half of one vector beside the second half of the one before it. */
static inline __attribute__((always_inline)) void
CB_VM_(cb_vm_update_begin)(const int KIND, const int CLIP, const int DECAY, const int NEWTON,
                           VM p, VM g, VM* a, VM* b, const cb_update_factors* f, VM* num,
                           VM* den) {
    if (CLIP)
        g = CB_VM_(cb_vm_at_least)(CB_VM_(cb_vm_at_most)(g * (CB_REAL)f->scale,
                                                       (CB_REAL)f->limit),
                                   -(CB_REAL)f->limit);
    if (DECAY)
        g = g + (CB_REAL)f->decay * p;
    if (KIND == CB_UPDATE_ADAM) {
        *a = (CB_REAL)f->keep1 * *a + (CB_REAL)f->add1 * g;
        *b = (CB_REAL)f->keep2 * *b + (CB_REAL)f->add2 * g * g;
        *num = (CB_REAL)f->rate * *a;
        *den = CB_VM_(cb_vm_sqrt)(NEWTON, *b) * (CB_REAL)f->root_scale + (CB_REAL)f->eps;
        return;
    }
    *a = (CB_REAL)f->keep2 * *a + (CB_REAL)f->add2 * g * g;
    *num = g;
    *den = CB_VM_(cb_vm_sqrt)(NEWTON, *a) + (CB_REAL)f->eps;
}

static inline __attribute__((always_inline)) VM
CB_VM_(cb_vm_update_end)(const int KIND, const int MOMENTUM, VM p, VM num, VM den, VM* b,
                         const cb_update_factors* f) {
    VM step = num / den;
    if (KIND == CB_UPDATE_ADAM)
        return p - step;
    if (!MOMENTUM)
        return p - (CB_REAL)f->rate * step;
    *b = (CB_REAL)f->momentum * *b + step;
    return p - (CB_REAL)f->rate * *b;
}

static inline __attribute__((always_inline)) VM
CB_VM_(cb_vm_update)(const int KIND, const int CLIP, const int MOMENTUM, const int DECAY,
                     const int NEWTON, VM p, VM g, VM* a, VM* b, const cb_update_factors* f) {
    VM num, den;
    CB_VM_(cb_vm_update_begin)(KIND, CLIP, DECAY, NEWTON, p, g, a, b, f, &num, &den);
    return CB_VM_(cb_vm_update_end)(KIND, MOMENTUM, p, num, den, b, f);
}

/* The lanes of a vector whose new values are not finite (x - x is 0 for
 * every finite x, NaN otherwise). */
static inline VMI CB_VM_(cb_vm_not_finite)(VM p, VM a, VM b) {
    return (VMI)((p - p) != 0) | (VMI)((a - a) != 0) | (VMI)((b - b) != 0);
}

/* seen[k] + 0 x: NaN from the first value x that is not finite on, ±0 while
 * every one is. An FMA a vector for each of p' and the second moment (Adam's
 * v', RMSprop's square average), each on its own chain (one chain would
 * hold every vector for two FMA latencies), where cb_vm_not_finite takes
 * eight operations on the ports that Adam's loop is bound by (bench/README.md,
 * "Kept: Adam's loop in fewer operations"). A state array that enters the
 * step needs no test of its own: where Adam's m' or RMSprop's momentum
 * buffer (with momentum) is not finite, neither is the step (inf / a
 * positive or infinite denominator, NaN / anything, times a rate) nor
 * p' = p - step. A second moment that overflows alone does: it makes its
 * step 0; so does RMSprop's buffer without momentum, carried over unread
 * (a state restored with a NaN in it). The zero is a variable, so that no
 * compiler may read 0 x as 0 (it is NaN for an infinite x). */
static inline __attribute__((always_inline)) void
CB_VM_(cb_vm_taint)(const int KIND, const int MOMENTUM, VM seen[3], VM zero, VM p, VM a, VM b) {
    seen[0] = seen[0] + zero * p;
    seen[1] = seen[1] + zero * (KIND == CB_UPDATE_ADAM ? b : a);
    if (KIND == CB_UPDATE_RMSPROP && !MOMENTUM)
        seen[2] = seen[2] + zero * b;
}

/* The second half of a vector's update (cb_vm_update_end), its new values
 * stored and tested. */
static inline __attribute__((always_inline)) void
CB_VM_(cb_vm_update_store)(const int KIND, const int MOMENTUM, VM p, VM num, VM den, VM a, VM b,
                           const cb_update_factors* f, CB_REAL* p_out, CB_REAL* a_out,
                           CB_REAL* b_out, VM seen[3], VM zero) {
    VM p_done = CB_VM_(cb_vm_update_end)(KIND, MOMENTUM, p, num, den, &b, f);
    *(VM*)p_out = p_done;
    *(VM*)a_out = a;
    *(VM*)b_out = b;
    CB_VM_(cb_vm_taint)(KIND, MOMENTUM, seen, zero, p_done, a, b);
}

static inline __attribute__((always_inline)) int
CB_VM_(cb_update_loop)(const int KIND, const int CLIP, const int MOMENTUM, const int DECAY,
                       const int ROOTS, ptrdiff_t n, const CB_REAL* param, CB_REAL* grad,
                       const CB_REAL* a, const CB_REAL* b, CB_REAL* a_out, CB_REAL* b_out,
                       const cb_update_factors* factors) {
    /* A copy the stores below cannot alias: its values are read, rounded
     * and splatted once, not on every vector (which in float32 cost more
     * than the update's own arithmetic). */
    const cb_update_factors local = *factors, *f = &local;
    VMI bad = {0};
    VM seen[3] = {{0}, {0}, {0}};
    volatile CB_REAL zero_value = 0;
    VM zero = CB_VM_(cb_vm_splat)(zero_value);
    /* The root of the vectors outside groups of three (all of them but with
     * CB_ROOTS_ONE_IN_THREE_BY_NEWTON): by Newton steps or not. */
    const int NEWTON = ROOTS == CB_ROOTS_BY_NEWTON;
    ptrdiff_t i = 0;
    if (n >= VM_LANES) {
        /* Software-pipelined: each pass starts vector i and finishes vector
         * i - 1, whose division has its operands ready, so the divider works
         * beside the rest of the next vector's arithmetic (with the Newton
         * root, the FMA units' square root). */
        VM p_held = *(const VM*)param, a_held = *(const VM*)a, b_held = *(const VM*)b;
        VM num, den;
        CB_VM_(cb_vm_update_begin)(KIND, CLIP, DECAY, NEWTON, p_held, *(const VM*)grad,
                                   &a_held, &b_held, f, &num, &den);
        /* Starts the vector at i with its root by Newton steps or not
         * (BY_NEWTON), finishes the one held. */
#define CB_VM_PASS(at, BY_NEWTON)                                                             \
        do {                                                                                  \
            VM p_next = *(const VM*)(param + (at)), a_next = *(const VM*)(a + (at));          \
            VM b_next = *(const VM*)(b + (at)), num_next, den_next;                           \
            CB_VM_(cb_vm_update_begin)(KIND, CLIP, DECAY, BY_NEWTON, p_next,                  \
                                       *(const VM*)(grad + (at)), &a_next, &b_next, f,        \
                                       &num_next, &den_next);                                 \
            CB_VM_(cb_vm_update_store)(KIND, MOMENTUM, p_held, num, den, a_held, b_held, f,   \
                                       grad + (at) - VM_LANES, a_out + (at) - VM_LANES,       \
                                       b_out + (at) - VM_LANES, seen, zero);                  \
            p_held = p_next, a_held = a_next, b_held = b_next;                                \
            num = num_next, den = den_next;                                                   \
        } while (0)
        i = VM_LANES;
        if (ROOTS == CB_ROOTS_ONE_IN_THREE_BY_NEWTON)
            for (; i + 3 * VM_LANES <= n; i += 3 * VM_LANES) {
                CB_VM_PASS(i, 1);
                CB_VM_PASS(i + VM_LANES, 0);
                CB_VM_PASS(i + 2 * VM_LANES, 0);
            }
        for (; i + VM_LANES <= n; i += VM_LANES)
            CB_VM_PASS(i, NEWTON);
#undef CB_VM_PASS
        CB_VM_(cb_vm_update_store)(KIND, MOMENTUM, p_held, num, den, a_held, b_held, f,
                                   grad + i - VM_LANES, a_out + i - VM_LANES,
                                   b_out + i - VM_LANES, seen, zero);
    }
    bad = (VMI)(seen[0] != seen[0]) | (VMI)(seen[1] != seen[1]) | (VMI)(seen[2] != seen[2]);
    if (i < n) {
        /* The tail through padded vectors; the padding's lanes (0 / 0 when
         * eps is 0) are left out of the test. */
        size_t bytes = (size_t)(n - i) * sizeof(CB_REAL);
        VM p_tail = {0}, g_tail = {0}, a_next = {0}, b_next = {0};
        VMI tail_lanes;
        memcpy(&p_tail, param + i, bytes);
        memcpy(&g_tail, grad + i, bytes);
        memcpy(&a_next, a + i, bytes);
        memcpy(&b_next, b + i, bytes);
        for (int lane = 0; lane < VM_LANES; lane++)
            tail_lanes[lane] = lane < n - i ? -1 : 0;
        VM p_next = CB_VM_(cb_vm_update)(KIND, CLIP, MOMENTUM, DECAY, NEWTON, p_tail, g_tail,
                                         &a_next, &b_next, f);
        memcpy(grad + i, &p_next, bytes);
        memcpy(a_out + i, &a_next, bytes);
        memcpy(b_out + i, &b_next, bytes);
        bad |= tail_lanes & CB_VM_(cb_vm_not_finite)(p_next, a_next, b_next);
    }
    for (int lane = 0; lane < VM_LANES; lane++)
        if (bad[lane])
            return 0;
    return 1;
}

/* One loop per case, so that none tests the clipping, the momentum or the
 * way of the square roots inside. */
static inline __attribute__((always_inline)) int
CB_VM_(cb_vadam_by)(const int ROOTS, ptrdiff_t n, const CB_REAL* param, CB_REAL* grad,
                    const CB_REAL* m, const CB_REAL* v, CB_REAL* m_out, CB_REAL* v_out,
                    const cb_update_factors* f) {
    /* Weight decay tested in the dtype: one that rounds to 0 would add 0 p,
     * nothing, to the finite parameters a step starts from. */
    int decay = (CB_REAL)f->decay != 0;
#define CB_ADAM_LOOP(CLIP, DECAY) \
    CB_VM_(cb_update_loop)(CB_UPDATE_ADAM, CLIP, 0, DECAY, ROOTS, n, param, grad, m, v, m_out, \
                           v_out, f)
    if (f->clip)
        return decay ? CB_ADAM_LOOP(1, 1) : CB_ADAM_LOOP(1, 0);
    return decay ? CB_ADAM_LOOP(0, 1) : CB_ADAM_LOOP(0, 0);
#undef CB_ADAM_LOOP
}

static inline __attribute__((always_inline)) int
CB_VM_(cb_vrmsprop_by)(const int ROOTS, ptrdiff_t n, const CB_REAL* param, CB_REAL* grad,
                       const CB_REAL* v, const CB_REAL* buf, CB_REAL* v_out, CB_REAL* buf_out,
                       const cb_update_factors* f) {
    /* The momentum test as given (f->momentum is not rounded: see
     * cb_update_factors), as the reference's: a float32 momentum that rounds
     * to 0 still takes the buffer to 0 x buf + step, as it said it would. */
    int momentum = f->momentum != 0;
#define CB_RMSPROP_LOOP(CLIP, MOMENTUM) \
    CB_VM_(cb_update_loop)(CB_UPDATE_RMSPROP, CLIP, MOMENTUM, 1, ROOTS, n, param, grad, v, buf, \
                           v_out, buf_out, f)
    if (f->clip)
        return momentum ? CB_RMSPROP_LOOP(1, 1) : CB_RMSPROP_LOOP(1, 0);
    return momentum ? CB_RMSPROP_LOOP(0, 1) : CB_RMSPROP_LOOP(0, 0);
#undef CB_RMSPROP_LOOP
}

/* The way (vmath.h's CB_ROOTS_...) this build takes the roots of these
 * loops on this CPU, in this dtype. */
static inline int CB_VM_(cb_update_roots)(void) {
    if (cb_root_by_newton())
        return CB_ROOTS_BY_NEWTON;
    return CB_ROOT_NEWTON_BUILT && CB_VM_DOUBLE ? CB_ROOTS_ONE_IN_THREE_BY_NEWTON
                                                : CB_ROOTS_BY_INSTRUCTION;
}

/* Returns CALL(ROOTS) with this CPU's way of the roots as a constant, so
 * that each way is a loop of its own and none tests the way inside. */
#define CB_BY_UPDATE_ROOTS(CALL)                                                              \
    switch (CB_VM_(cb_update_roots)()) {                                                      \
    case CB_ROOTS_BY_NEWTON:                                                                  \
        return CALL(CB_ROOTS_BY_NEWTON);                                                      \
    case CB_ROOTS_ONE_IN_THREE_BY_NEWTON:                                                     \
        return CALL(CB_ROOTS_ONE_IN_THREE_BY_NEWTON);                                         \
    default:                                                                                  \
        return CALL(CB_ROOTS_BY_INSTRUCTION);                                                 \
    }

static inline int CB_VM_(cb_vadam)(ptrdiff_t n, const CB_REAL* param, CB_REAL* grad,
                                   const CB_REAL* m, const CB_REAL* v, CB_REAL* m_out,
                                   CB_REAL* v_out, const cb_update_factors* f) {
#define CB_ADAM_BY(ROOTS) CB_VM_(cb_vadam_by)(ROOTS, n, param, grad, m, v, m_out, v_out, f)
    CB_BY_UPDATE_ROOTS(CB_ADAM_BY)
#undef CB_ADAM_BY
}

static inline int CB_VM_(cb_vrmsprop)(ptrdiff_t n, const CB_REAL* param, CB_REAL* grad,
                                      const CB_REAL* v, const CB_REAL* buf, CB_REAL* v_out,
                                      CB_REAL* buf_out, const cb_update_factors* f) {
#define CB_RMSPROP_BY(ROOTS) \
    CB_VM_(cb_vrmsprop_by)(ROOTS, n, param, grad, v, buf, v_out, buf_out, f)
    CB_BY_UPDATE_ROOTS(CB_RMSPROP_BY)
#undef CB_RMSPROP_BY
}
#undef CB_BY_UPDATE_ROOTS
