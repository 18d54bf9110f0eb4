/* The K steps of a whole packed tile (CB_MR x CB_NV vectors, 12 x 2) on the
 * AVX-512 build, in one asm block: included by tiles_template.h once per
 * dtype, where CB_ASM_STEPS (tiles.h) is set.
 *
 * Why asm: gcc, given these steps in C (cb_tile), moves two accumulators
 * through other registers at every step, tests the loop twice, and updates
 * an address for each request for lines ahead: about 50 instructions a step
 * for 24 FMAs. In float64 the C steps ran at 0.96-0.98 of the rate of the
 * instructions below in tile_gflops, and the big layers' products at
 * 0.94-0.98 (a 12 x 16 tile in intrinsics at 0.90, in a C program with its
 * panels in L1; bench/README.md, "Kept: a packed tile's float64 steps in
 * asm"). In float32 they did not lose, and stay.
 *
 * Registers: the accumulators are zmm8-31 (row i's two vectors zmm(8 + 2i),
 * zmm(9 + 2i)); a pair of steps loads its four B vectors into zmm0-3 and
 * broadcasts each value of A into zmm4 and zmm5 in turn, while the row
 * before it runs its FMAs. Each element sums its products in the order of p
 * from 0, as cb_tile does, by FMAs as gcc contracts the C steps into at the
 * build's -O3: the same bits. AT&T syntax (gcc's default; not -masm=intel).
 * The tile asks for the lines cb_tile does: A and B
 * CB_A_PREFETCH_STEPS and CB_B_PREFETCH_STEPS steps ahead, and C's rows,
 * two a pair, over the pairs `asking` (from the pair that holds cb_tile's
 * first request; for an odd count of rows, one row past them too: a
 * request never faults). */

#define CB_STR_(x) #x
#define CB_STR(x) CB_STR_(x)
#define CB_ASM_ES CB_ASM_BYTES
/* Row i's FMAs, its accumulators acc0 and acc1, B's vectors b0 and b1. */
#define CB_ASM_ROW(acc0, acc1, b0, b1, splat)                                                \
    "vfmadd231" CB_ASM_PACKED " %%zmm" #b0 ", %%zmm" #splat ", %%zmm" #acc0 "\n\t"           \
    "vfmadd231" CB_ASM_PACKED " %%zmm" #b1 ", %%zmm" #splat ", %%zmm" #acc1 "\n\t"
/* The value'th of the pair's 24 values of A, into zmm`splat`. */
#define CB_ASM_SPLAT(value, splat)                                                           \
    "vbroadcast" CB_ASM_SCALAR " " #value "*" CB_ASM_ES "(%[a]), %%zmm" #splat "\n\t"
#if CB_A_PREFETCH_STEPS > 0
#define CB_ASM_A_REQUESTS                                                                    \
    "prefetcht0 " CB_STR(CB_A_PREFETCH_STEPS) "*12*" CB_ASM_ES "(%[a])\n\t"                  \
    "prefetcht0 (" CB_STR(CB_A_PREFETCH_STEPS) "*12+11)*" CB_ASM_ES "(%[a])\n\t"             \
    "prefetcht0 (" CB_STR(CB_A_PREFETCH_STEPS) "*12+12)*" CB_ASM_ES "(%[a])\n\t"             \
    "prefetcht0 (" CB_STR(CB_A_PREFETCH_STEPS) "*12+23)*" CB_ASM_ES "(%[a])\n\t"
#else
#define CB_ASM_A_REQUESTS ""
#endif
#if CB_B_PREFETCH_STEPS > 0
#define CB_ASM_B_REQUESTS                                                                    \
    "prefetcht0 (%[b_ahead])\n\t"                                                            \
    "prefetcht0 128-" CB_ASM_ES "(%[b_ahead])\n\t"                                           \
    "prefetcht0 (%[b_ahead],%[b_step])\n\t"                                                  \
    "prefetcht0 128-" CB_ASM_ES "(%[b_ahead],%[b_step])\n\t"                                 \
    "lea (%[b_ahead],%[b_step],2), %[b_ahead]\n\t"
#else
#define CB_ASM_B_REQUESTS ""
#endif
#define CB_ASM_C_REQUESTS                                                                    \
    "prefetcht0 (%[c_row])\n\t"                                                              \
    "prefetcht0 (%[c_row],%[c_last])\n\t"                                                    \
    "add %[ldc], %[c_row]\n\t"                                                               \
    "prefetcht0 (%[c_row])\n\t"                                                              \
    "prefetcht0 (%[c_row],%[c_last])\n\t"                                                    \
    "add %[ldc], %[c_row]\n\t"
#define CB_ASM_PAIR                                                                          \
    "vmovu" CB_ASM_PACKED " (%[b]), %%zmm0\n\t"                                             \
    "vmovu" CB_ASM_PACKED " 64(%[b]), %%zmm1\n\t"                                           \
    "vmovu" CB_ASM_PACKED " (%[b],%[b_step]), %%zmm2\n\t"                                   \
    "vmovu" CB_ASM_PACKED " 64(%[b],%[b_step]), %%zmm3\n\t"                                 \
    CB_ASM_SPLAT(0, 4) CB_ASM_SPLAT(1, 5)                                                    \
    CB_ASM_ROW(8, 9, 0, 1, 4) CB_ASM_SPLAT(2, 4)                                             \
    CB_ASM_ROW(10, 11, 0, 1, 5) CB_ASM_SPLAT(3, 5)                                           \
    CB_ASM_ROW(12, 13, 0, 1, 4) CB_ASM_SPLAT(4, 4)                                           \
    CB_ASM_ROW(14, 15, 0, 1, 5) CB_ASM_SPLAT(5, 5)                                           \
    CB_ASM_ROW(16, 17, 0, 1, 4) CB_ASM_SPLAT(6, 4)                                           \
    CB_ASM_ROW(18, 19, 0, 1, 5) CB_ASM_SPLAT(7, 5)                                           \
    CB_ASM_ROW(20, 21, 0, 1, 4) CB_ASM_SPLAT(8, 4)                                           \
    CB_ASM_ROW(22, 23, 0, 1, 5) CB_ASM_SPLAT(9, 5)                                           \
    CB_ASM_ROW(24, 25, 0, 1, 4) CB_ASM_SPLAT(10, 4)                                          \
    CB_ASM_ROW(26, 27, 0, 1, 5) CB_ASM_SPLAT(11, 5)                                          \
    CB_ASM_ROW(28, 29, 0, 1, 4) CB_ASM_SPLAT(12, 4)                                          \
    CB_ASM_ROW(30, 31, 0, 1, 5) CB_ASM_SPLAT(13, 5)                                          \
    CB_ASM_ROW(8, 9, 2, 3, 4) CB_ASM_SPLAT(14, 4)                                            \
    CB_ASM_ROW(10, 11, 2, 3, 5) CB_ASM_SPLAT(15, 5)                                          \
    CB_ASM_ROW(12, 13, 2, 3, 4) CB_ASM_SPLAT(16, 4)                                          \
    CB_ASM_ROW(14, 15, 2, 3, 5) CB_ASM_SPLAT(17, 5)                                          \
    CB_ASM_ROW(16, 17, 2, 3, 4) CB_ASM_SPLAT(18, 4)                                          \
    CB_ASM_ROW(18, 19, 2, 3, 5) CB_ASM_SPLAT(19, 5)                                          \
    CB_ASM_ROW(20, 21, 2, 3, 4) CB_ASM_SPLAT(20, 4)                                          \
    CB_ASM_ROW(22, 23, 2, 3, 5) CB_ASM_SPLAT(21, 5)                                          \
    CB_ASM_ROW(24, 25, 2, 3, 4) CB_ASM_SPLAT(22, 4)                                          \
    CB_ASM_ROW(26, 27, 2, 3, 5) CB_ASM_SPLAT(23, 5)                                          \
    CB_ASM_ROW(28, 29, 2, 3, 4)                                                              \
    CB_ASM_ROW(30, 31, 2, 3, 5)                                                              \
    "add $24*" CB_ASM_ES ", %[a]\n\t"                                                        \
    "lea (%[b],%[b_step],2), %[b]\n\t"
#define CB_ASM_STORE(acc0, acc1, row)                                                        \
    "vmovu" CB_ASM_PACKED " %%zmm" #acc0 ", " #row "*128(%[out])\n\t"                        \
    "vmovu" CB_ASM_PACKED " %%zmm" #acc1 ", " #row "*128+64(%[out])\n\t"

/* 2 (before + asking + after) K steps from zero accumulators, into out
 * (CB_MR x CB_NV vectors): `before` pairs, then `asking` pairs that each ask
 * for two rows of C from c_row on (c_last: the bytes from a row's first
 * value to its last), then `after` pairs. */
static inline __attribute__((always_inline)) void
CB_(cb_packed_steps)(ptrdiff_t before, ptrdiff_t asking, ptrdiff_t after, const CB_REAL* a,
                     const CB_REAL* b, ptrdiff_t b_rs, const CB_REAL* c_row, ptrdiff_t ldc,
                     ptrdiff_t c_last, CB_VEC* out) {
    const ptrdiff_t b_step = b_rs * (ptrdiff_t)sizeof(CB_REAL);
    const ptrdiff_t ldc_bytes = ldc * (ptrdiff_t)sizeof(CB_REAL);
    uintptr_t b_ahead = (uintptr_t)b + (uintptr_t)(CB_B_PREFETCH_STEPS * b_step);
    __asm__ volatile(
        "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
        "vmovdqa64 %%zmm8, %%zmm9\n\t"  "vmovdqa64 %%zmm8, %%zmm10\n\t"
        "vmovdqa64 %%zmm8, %%zmm11\n\t" "vmovdqa64 %%zmm8, %%zmm12\n\t"
        "vmovdqa64 %%zmm8, %%zmm13\n\t" "vmovdqa64 %%zmm8, %%zmm14\n\t"
        "vmovdqa64 %%zmm8, %%zmm15\n\t" "vmovdqa64 %%zmm8, %%zmm16\n\t"
        "vmovdqa64 %%zmm8, %%zmm17\n\t" "vmovdqa64 %%zmm8, %%zmm18\n\t"
        "vmovdqa64 %%zmm8, %%zmm19\n\t" "vmovdqa64 %%zmm8, %%zmm20\n\t"
        "vmovdqa64 %%zmm8, %%zmm21\n\t" "vmovdqa64 %%zmm8, %%zmm22\n\t"
        "vmovdqa64 %%zmm8, %%zmm23\n\t" "vmovdqa64 %%zmm8, %%zmm24\n\t"
        "vmovdqa64 %%zmm8, %%zmm25\n\t" "vmovdqa64 %%zmm8, %%zmm26\n\t"
        "vmovdqa64 %%zmm8, %%zmm27\n\t" "vmovdqa64 %%zmm8, %%zmm28\n\t"
        "vmovdqa64 %%zmm8, %%zmm29\n\t" "vmovdqa64 %%zmm8, %%zmm30\n\t"
        "vmovdqa64 %%zmm8, %%zmm31\n\t"
        "test %[before], %[before]\n\t"
        "jz 2f\n"
        "1:\n\t"
        CB_ASM_A_REQUESTS CB_ASM_B_REQUESTS CB_ASM_PAIR
        "dec %[before]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "test %[asking], %[asking]\n\t"
        "jz 4f\n"
        "3:\n\t"
        CB_ASM_C_REQUESTS CB_ASM_A_REQUESTS CB_ASM_B_REQUESTS CB_ASM_PAIR
        "dec %[asking]\n\t"
        "jnz 3b\n"
        "4:\n\t"
        "test %[after], %[after]\n\t"
        "jz 6f\n"
        "5:\n\t"
        CB_ASM_A_REQUESTS CB_ASM_B_REQUESTS CB_ASM_PAIR
        "dec %[after]\n\t"
        "jnz 5b\n"
        "6:\n\t"
        CB_ASM_STORE(8, 9, 0) CB_ASM_STORE(10, 11, 1) CB_ASM_STORE(12, 13, 2)
        CB_ASM_STORE(14, 15, 3) CB_ASM_STORE(16, 17, 4) CB_ASM_STORE(18, 19, 5)
        CB_ASM_STORE(20, 21, 6) CB_ASM_STORE(22, 23, 7) CB_ASM_STORE(24, 25, 8)
        CB_ASM_STORE(26, 27, 9) CB_ASM_STORE(28, 29, 10) CB_ASM_STORE(30, 31, 11)
        : [before] "+r"(before), [asking] "+r"(asking), [after] "+r"(after), [a] "+r"(a),
          [b] "+r"(b), [b_ahead] "+r"(b_ahead), [c_row] "+r"(c_row)
        : [b_step] "r"(b_step), [ldc] "r"(ldc_bytes), [c_last] "r"(c_last), [out] "r"(out)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20",
          "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29",
          "xmm30", "xmm31", "cc", "memory");
}

#undef CB_ASM_ES
#undef CB_ASM_ROW
#undef CB_ASM_SPLAT
#undef CB_ASM_A_REQUESTS
#undef CB_ASM_B_REQUESTS
#undef CB_ASM_C_REQUESTS
#undef CB_ASM_PAIR
#undef CB_ASM_STORE
#undef CB_STR
#undef CB_STR_
