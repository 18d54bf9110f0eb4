/* Adam's update over an array for one dtype, written on the vectors of
 * vmath_template.h (included after it, inside the same dtype block): its
 * square root is cb_vm_sqrt, which the AVX-512 build runs on the FMA units,
 * so that only the division is left to the divider. optimizers.pxi's
 * adam_range computes the factors and calls it.
 *
 * The arithmetic, element by element, as written (an FMA wherever the
 * build contracts a product and a sum):
 *   g  = clip(g)                         when factors->clip: g * scale in [-limit, limit]
 *   g  = g + decay p
 *   m' = beta1 m + (1 - beta1) g
 *   v' = beta2 v + (1 - beta2) g g
 *   p' = p - step_size m' / (sqrt(v') inverse_root2 + eps)
 * with p' written over g, m' to m_out and v' to v_out (each may be its
 * input: every element is read before it is written). Returns whether
 * every p', m' and v' is finite.
 */
#ifndef CB_ADAM_FACTORS_DEFINED
#define CB_ADAM_FACTORS_DEFINED
/* Each already rounded to the dtype it is used in (a float32 step's values
 * are floats held in doubles). */
typedef struct {
    double step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, inverse_root2;
    double decay, scale, limit;
    int clip;
} cb_adam_factors;
#endif

static inline VM CB_VM_(cb_vm_adam)(VM p, VM g, VM* m, VM* v, const cb_adam_factors* f,
                                    int clip) {
    if (clip)
        g = CB_VM_(cb_vm_at_least)(CB_VM_(cb_vm_at_most)(g * (CB_REAL)f->scale,
                                                       (CB_REAL)f->limit),
                                   -(CB_REAL)f->limit);
    g = g + (CB_REAL)f->decay * p;
    *m = (CB_REAL)f->beta1 * *m + (CB_REAL)f->one_minus_beta1 * g;
    *v = (CB_REAL)f->beta2 * *v + (CB_REAL)f->one_minus_beta2 * g * g;
    return p - (CB_REAL)f->step_size * *m
                   / (CB_VM_(cb_vm_sqrt)(*v) * (CB_REAL)f->inverse_root2 + (CB_REAL)f->eps);
}

/* The lanes of a vector whose new values are not finite (x - x is 0 for
 * every finite x, NaN otherwise). */
static inline VMI CB_VM_(cb_vm_not_finite)(VM p, VM m, VM v) {
    return (VMI)((p - p) != 0) | (VMI)((m - m) != 0) | (VMI)((v - v) != 0);
}

static inline int CB_VM_(cb_adam_loop)(ptrdiff_t n, const CB_REAL* param, CB_REAL* grad,
                                       const CB_REAL* m, const CB_REAL* v, CB_REAL* m_out,
                                       CB_REAL* v_out, const cb_adam_factors* f, int clip) {
    VMI bad = {0};
    ptrdiff_t i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES) {
        VM m_next = *(const VM*)(m + i), v_next = *(const VM*)(v + i);
        VM p_next = CB_VM_(cb_vm_adam)(*(const VM*)(param + i), *(const VM*)(grad + i),
                                       &m_next, &v_next, f, clip);
        *(VM*)(grad + i) = p_next;
        *(VM*)(m_out + i) = m_next;
        *(VM*)(v_out + i) = v_next;
        bad |= CB_VM_(cb_vm_not_finite)(p_next, m_next, v_next);
    }
    if (i < n) {
        /* The tail through padded vectors; the padding's lanes (0 / 0 when
         * eps is 0) are left out of the test. */
        size_t bytes = (size_t)(n - i) * sizeof(CB_REAL);
        VM p_tail = {0}, g_tail = {0}, m_next = {0}, v_next = {0};
        VMI tail_lanes;
        memcpy(&p_tail, param + i, bytes);
        memcpy(&g_tail, grad + i, bytes);
        memcpy(&m_next, m + i, bytes);
        memcpy(&v_next, v + i, bytes);
        for (int lane = 0; lane < VM_LANES; lane++)
            tail_lanes[lane] = lane < n - i ? -1 : 0;
        VM p_next = CB_VM_(cb_vm_adam)(p_tail, g_tail, &m_next, &v_next, f, clip);
        memcpy(grad + i, &p_next, bytes);
        memcpy(m_out + i, &m_next, bytes);
        memcpy(v_out + i, &v_next, bytes);
        bad |= tail_lanes & CB_VM_(cb_vm_not_finite)(p_next, m_next, v_next);
    }
    for (int lane = 0; lane < VM_LANES; lane++)
        if (bad[lane])
            return 0;
    return 1;
}

/* Two loops, so that each is compiled without the clipping test inside. */
static inline int CB_VM_(cb_vadam)(ptrdiff_t n, const CB_REAL* param, CB_REAL* grad,
                                   const CB_REAL* m, const CB_REAL* v, CB_REAL* m_out,
                                   CB_REAL* v_out, const cb_adam_factors* f) {
    if (f->clip)
        return CB_VM_(cb_adam_loop)(n, param, grad, m, v, m_out, v_out, f, 1);
    return CB_VM_(cb_adam_loop)(n, param, grad, m, v, m_out, v_out, f, 0);
}
