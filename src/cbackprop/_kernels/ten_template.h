/* The ten-column tiles of tiles_template.h, for one dtype and one vector
 * width: included with CB_TEN_VARIANT (a name suffix), CB_TEN_LANES (lanes
 * per vector: 2, 4 or 8) and CB_TEN_PAYS (whether they beat a padded tile)
 * defined, which it undefines.
 *
 * Products of 9 or 10 columns (an output layer of 10 classes), op(A) read in
 * place along K (its steps adjacent): padded to whole vectors, a tile spends
 * up to a third of its FMAs on padding columns. Columns 0-7 go in vectors of
 * TEN_LANES as usual; columns 8 and 9 in one of two ways.
 *
 * By pairs of rows (16- and 32-byte builds): one vector holds the last two
 * results of TEN_LANES/2 rows, [C[i,8] C[i,9] C[i+1,8] C[i+1,9] ...],
 * against a B sliver packed as [b0..b7, (b8 b9) repeated] per step (8 +
 * TEN_LANES values); the rows' splats are interleaved by shuffles at every
 * step. A tile is TEN_LANES rows.
 *
 * By groups of steps (64-byte builds): one vector per row of C over groups
 * of H = TEN_LANES/2 steps of K, the row's H values of A at those steps
 * loaded twice over by one broadcast ([a_k .. a_k+H-1] in both halves),
 * times [b8 at those steps, b9 at those steps]; each half's lanes are summed
 * once, at the end. No shuffles, but a vector more per row: it takes 32
 * registers. On a Zen 4 it ran 1.4x the pairs of rows in whole 512-bit
 * vectors and 1.1x in half vectors in float32 (bench/README.md, "Kept: ten
 * columns by groups of steps"); with 16 registers it lost 4-8 %.
 * A B sliver is packed by groups of H steps: each group's 8 values of
 * columns 0-7 per step, then TEN_LANES values, b8 at the group's steps and
 * b9 at them. A last group of t < H steps has one vector per step instead
 * (b8 and b9 in that step's lanes, zero elsewhere): 10 kc + t (TEN_LANES -
 * 2) values in all, within the padded packing of 10 columns that the
 * workspace holds (round_up(10, NR) kc, NR >= 2 TEN_LANES). */
#define CB_TV(name) CB_(CB_CAT(name, CB_TEN_VARIANT))
#define CB_TEN_FULL (8 / CB_TEN_LANES)          /* whole vectors: columns 0-7 */
#define CB_TEN_BY_STEPS (CB_VECTOR_BYTES == 64)
#define CB_TEN_H (CB_TEN_LANES / 2)             /* K steps per group; rows per pair */
/* Bytes of a half vector (CB_TEN_LANES is at most CB_LANES_N). */
#define CB_TEN_HALF_BYTES (CB_VECTOR_BYTES / (CB_LANES_N / CB_TEN_LANES) / 2)
/* Rows of C per tile. By groups of steps each row holds CB_TEN_FULL + 1
 * accumulators, beside the B vectors of one step, the b8/b9 vector and one
 * broadcast. */
#if CB_TEN_BY_STEPS
#define CB_TEN_ROWS_FIT ((CB_VECTOR_REGISTERS - CB_TEN_FULL - 2) / (CB_TEN_FULL + 1))
#define CB_TEN_ROWS (CB_TEN_ROWS_FIT < CB_TEN_LANES ? CB_TEN_ROWS_FIT : CB_TEN_LANES)
#else
#define CB_TEN_ROWS CB_TEN_LANES
#endif
typedef CB_REAL CB_TV(cb_ten_vec) __attribute__((vector_size(CB_TEN_LANES * sizeof(CB_REAL)),
                                                aligned(sizeof(CB_REAL)), may_alias));
#define CB_TEN_VEC CB_TV(cb_ten_vec)

static inline ptrdiff_t CB_TV(cb_ten_rows)(void) { return CB_TEN_ROWS; }
static inline int CB_TV(cb_ten_pays)(void) { return CB_TEN_PAYS; }
/* The shortest K the tiles take (tiles.h); below it, by groups of 4 steps,
 * the halves' sums and the short last group cost more than the padding. */
#if CB_TEN_BY_STEPS && CB_TEN_H == 4
#define CB_TEN_MIN_K CB_TEN_MIN_K_BY_FOURS
#else
#define CB_TEN_MIN_K 1
#endif
static inline ptrdiff_t CB_TV(cb_ten_min_k)(void) { return CB_TEN_MIN_K; }
static inline ptrdiff_t CB_TV(cb_ten_lanes)(void) { return CB_TEN_LANES; }

/* One step of columns 0-7: every row's splat against the step's B vectors. */
static inline __attribute__((always_inline)) void
CB_TV(cb_ten_step)(CB_TEN_VEC acc[][CB_TEN_FULL], const CB_REAL* const* row, ptrdiff_t k,
                   const CB_REAL* b) {
    CB_TEN_VEC bv[CB_TEN_FULL];
    for (int f = 0; f < CB_TEN_FULL; f++)
        bv[f] = *(const CB_TEN_VEC*)(b + f * CB_TEN_LANES);
    for (int i = 0; i < CB_TEN_ROWS; i++) {
        const CB_TEN_VEC splat = row[i][k] - (CB_TEN_VEC){0};
        for (int f = 0; f < CB_TEN_FULL; f++)
            acc[i][f] += splat * bv[f];
    }
}

#if CB_TEN_BY_STEPS
/* [p[0] .. p[H-1], p[0] .. p[H-1]] by one broadcast load (a load-port
 * operation, where a shuffle would compete with the FMAs): a splat of the
 * H values taken as one integer of 16 bytes, or of 32 bytes by the AVX-512
 * instruction that broadcasts them. */
static inline CB_TEN_VEC CB_TV(cb_ten_twice)(const CB_REAL* p) {
#if CB_TEN_HALF_BYTES == 16
    typedef unsigned __int128 half;
    typedef half halves __attribute__((vector_size(CB_TEN_LANES * sizeof(CB_REAL))));
    half h;
    __builtin_memcpy(&h, p, sizeof h);
    return (CB_TEN_VEC)(h + (halves){0});
#elif CB_TEN_HALF_BYTES == 32 && defined(__AVX512F__)
    return (CB_TEN_VEC)_mm512_broadcast_f64x4(_mm256_loadu_pd(p));
#else
    /* A 64-byte vector compiled for AVX2 (the test-only build). */
    CB_REAL twice[CB_TEN_LANES];
    for (int s = 0; s < CB_TEN_H; s++)
        twice[s] = twice[CB_TEN_H + s] = p[s];
    return *(const CB_TEN_VEC*)twice;
#endif
}

static inline __attribute__((always_inline)) void
CB_TV(cb_pack_ten_body)(ptrdiff_t kc, ptrdiff_t cols, const CB_REAL* B, ptrdiff_t rsb,
                        ptrdiff_t csb, CB_REAL* packed) {
    ptrdiff_t group = 0;
    for (; group + CB_TEN_H <= kc; group += CB_TEN_H) {
        /* A whole group: constant trip counts, unrolled (with one loop for
         * any group, float32 8x784x10, mostly packing, ran at 22.5 GF/s
         * on a Zen 4; with this, 27.8). */
        CB_REAL* last_two = packed + CB_TEN_H * 8;
        for (int s = 0; s < CB_TEN_H; s++) {
            const CB_REAL* step = B + (group + s) * rsb;
            for (int j = 0; j < 8; j++)
                packed[s * 8 + j] = step[j * csb];
            last_two[s] = step[8 * csb];
            last_two[CB_TEN_H + s] = cols == 10 ? step[9 * csb] : 0;
        }
        packed += CB_TEN_H * 8 + CB_TEN_LANES;
    }
    /* The last, shorter group: its steps' columns 0-7, then one vector per
     * step with b8 and b9 in that step's lanes, zero elsewhere. */
    const ptrdiff_t steps = kc - group;
    CB_REAL* last_two = packed + steps * 8;
    for (ptrdiff_t s = 0; s < steps; s++) {
        const CB_REAL* step = B + (group + s) * rsb;
        for (int j = 0; j < 8; j++)
            packed[s * 8 + j] = step[j * csb];
        for (int lane = 0; lane < CB_TEN_LANES; lane++)
            last_two[s * CB_TEN_LANES + lane] = 0;
        last_two[s * CB_TEN_LANES + s] = step[8 * csb];
        if (cols == 10)
            last_two[s * CB_TEN_LANES + CB_TEN_H + s] = step[9 * csb];
    }
}

/* C[:rows, :cols] (=|+=) op(A) rows @ a packed ten-column sliver, rows <=
 * CB_TEN_ROWS, 9 <= cols <= 10, row i of A at a + i * a_rs with its steps
 * adjacent; rows past `rows` re-read the last real one. */
static void CB_TV(cb_ten)(ptrdiff_t kc, const CB_REAL* a, ptrdiff_t a_rs, const CB_REAL* b,
                          CB_REAL* C, ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t cols,
                          int overwrite) {
    const CB_REAL* row[CB_TEN_ROWS];
    CB_TEN_VEC acc[CB_TEN_ROWS][CB_TEN_FULL];
    CB_TEN_VEC last_two[CB_TEN_ROWS];    /* columns 8-9 */
    CB_UNROLLED for (int i = 0; i < CB_TEN_ROWS; i++) {
        row[i] = a + (i < rows ? i : rows - 1) * a_rs;
        CB_UNROLLED for (int f = 0; f < CB_TEN_FULL; f++)
            acc[i][f] = (CB_TEN_VEC){0};
        last_two[i] = (CB_TEN_VEC){0};
    }
    const ptrdiff_t whole_groups_end = kc - kc % CB_TEN_H;
    ptrdiff_t k = 0;
    for (; k < whole_groups_end; k += CB_TEN_H) {
        for (int s = 0; s < CB_TEN_H; s++)
            CB_TV(cb_ten_step)(acc, row, k + s, b + s * 8);
        const CB_TEN_VEC b89 = *(const CB_TEN_VEC*)(b + CB_TEN_H * 8);
        for (int i = 0; i < CB_TEN_ROWS; i++)
            last_two[i] += CB_TV(cb_ten_twice)(row[i] + k) * b89;
        b += CB_TEN_H * 8 + CB_TEN_LANES;
    }
    if (k < kc) {
        /* The last, shorter group, step by step: A is not read past kc. */
        const ptrdiff_t steps = kc - k;
        for (ptrdiff_t s = 0; s < steps; s++)
            CB_TV(cb_ten_step)(acc, row, k + s, b + s * 8);
        for (ptrdiff_t s = 0; s < steps; s++) {
            const CB_TEN_VEC b89 = *(const CB_TEN_VEC*)(b + steps * 8 + s * CB_TEN_LANES);
            for (int i = 0; i < CB_TEN_ROWS; i++)
                last_two[i] += (row[i][k + s] - (CB_TEN_VEC){0}) * b89;
        }
    }
    CB_UNROLLED for (int i = 0; i < CB_TEN_ROWS; i++) {
        if (i >= rows)
            break;
        CB_UNROLLED for (int f = 0; f < CB_TEN_FULL; f++) {
            CB_REAL* out = C + i * ldc + f * CB_TEN_LANES;
            CB_TEN_VEC result = acc[i][f];
            if (!overwrite)
                result += *(const CB_TEN_VEC*)out;
            *(CB_TEN_VEC*)out = result;
        }
        CB_REAL lanes[CB_TEN_LANES], sums[2] = {0, 0};
        *(CB_TEN_VEC*)lanes = last_two[i];
        for (int s = 0; s < CB_TEN_H; s++) {
            sums[0] += lanes[s];
            sums[1] += lanes[CB_TEN_H + s];
        }
        CB_(cb_store_corner)(sums, 0, C + i * ldc + 8, ldc, 1, cols - 8, overwrite);
    }
}
#else
typedef CB_INDEX CB_TV(cb_ten_index) __attribute__((vector_size(CB_TEN_LANES * sizeof(CB_INDEX))));

static inline CB_TEN_VEC CB_TV(cb_ten_pairs)(const CB_TEN_VEC* splats) {
    /* [x0 x0 x1 x1 ...] from splats of x0, x1, ...: lane l from splat l/2. Every
     * lane of a splat holds its value, so each step is a blend (lanes keep
     * their places), which no CPU class runs slower than a permute. */
#if CB_TEN_LANES == 2
    return splats[0];
#elif CB_TEN_LANES == 4
    return CB_SHUFFLE(CB_TV(cb_ten_index), splats[0], splats[1], 0, 1, 6, 7);
#else
    CB_TEN_VEC low = CB_SHUFFLE(CB_TV(cb_ten_index), splats[0], splats[1], 0, 1, 10, 11, 4, 5, 14, 15);
    CB_TEN_VEC high = CB_SHUFFLE(CB_TV(cb_ten_index), splats[2], splats[3], 0, 1, 10, 11, 4, 5, 14, 15);
    return CB_SHUFFLE(CB_TV(cb_ten_index), low, high, 0, 1, 2, 3, 12, 13, 14, 15);
#endif
}

static inline __attribute__((always_inline)) void
CB_TV(cb_pack_ten_body)(ptrdiff_t kc, ptrdiff_t cols, const CB_REAL* B, ptrdiff_t rsb,
                        ptrdiff_t csb, CB_REAL* packed) {
    for (ptrdiff_t p = 0; p < kc; p++) {
        const CB_REAL* step = B + p * rsb;
        for (int j = 0; j < 8; j++)
            packed[j] = step[j * csb];
        const CB_REAL b8 = step[8 * csb], b9 = cols == 10 ? step[9 * csb] : 0;
        for (int j = 8; j < 8 + CB_TEN_LANES; j += 2) {
            packed[j] = b8;
            packed[j + 1] = b9;
        }
        packed += 8 + CB_TEN_LANES;
    }
}

/* C[:rows, :cols] (=|+=) op(A) rows @ a packed ten-column sliver, rows <=
 * CB_TEN_ROWS, 9 <= cols <= 10, row i of A at a + i * a_rs with its steps
 * adjacent; rows past `rows` re-read the last real one. Inlined into its one
 * caller: left out of line (gcc's limit on stack frame growth), its
 * accumulators started in memory, and float32 products of 10 columns on
 * the AVX2 build ran 10-34 % slower (not the longest: 64x784x10 level). */
static inline __attribute__((always_inline)) void
CB_TV(cb_ten)(ptrdiff_t kc, const CB_REAL* a, ptrdiff_t a_rs, const CB_REAL* b,
              CB_REAL* C, ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t cols, int overwrite) {
    const CB_REAL* row[CB_TEN_ROWS];
    CB_TEN_VEC acc[CB_TEN_ROWS][CB_TEN_FULL];
    CB_TEN_VEC pair[2];
    for (int i = 0; i < CB_TEN_ROWS; i++) {
        row[i] = a + (i < rows ? i : rows - 1) * a_rs;
        for (int f = 0; f < CB_TEN_FULL; f++)
            acc[i][f] = (CB_TEN_VEC){0};
    }
    pair[0] = pair[1] = (CB_TEN_VEC){0};
    for (ptrdiff_t k = 0; k < kc; k++) {
        CB_TEN_VEC bv[CB_TEN_FULL];
        for (int f = 0; f < CB_TEN_FULL; f++)
            bv[f] = *(const CB_TEN_VEC*)(b + f * CB_TEN_LANES);
        const CB_TEN_VEC b89 = *(const CB_TEN_VEC*)(b + 8);
        for (int g = 0; g < 2; g++) {
            CB_TEN_VEC splat[CB_TEN_H];
            for (int r = 0; r < CB_TEN_H; r++) {
                const int i = g * CB_TEN_H + r;
                splat[r] = row[i][k] - (CB_TEN_VEC){0};
                CB_IN_REGISTER(splat[r]);
                for (int f = 0; f < CB_TEN_FULL; f++)
                    acc[i][f] += splat[r] * bv[f];
            }
            pair[g] += CB_TV(cb_ten_pairs)(splat) * b89;
        }
        b += 8 + CB_TEN_LANES;
    }
    /* Columns 0-7 straight into C; 8 and 9 from their lanes of the pair vectors. */
    CB_REAL pairs[2][CB_TEN_LANES];
    for (int g = 0; g < 2; g++)
        *(CB_TEN_VEC*)pairs[g] = pair[g];
    for (int i = 0; i < CB_TEN_ROWS; i++) {
        if (i >= rows)
            break;
        for (int f = 0; f < CB_TEN_FULL; f++) {
            CB_REAL* out = C + i * ldc + f * CB_TEN_LANES;
            CB_TEN_VEC result = acc[i][f];
            if (!overwrite)
                result += *(const CB_TEN_VEC*)out;
            *(CB_TEN_VEC*)out = result;
        }
        const CB_REAL* last = &pairs[i / CB_TEN_H][2 * (i % CB_TEN_H)];
        CB_(cb_store_corner)(last, 0, C + i * ldc + 8, ldc, 1, cols - 8, overwrite);
    }
}
#endif

/* A B whose columns are adjacent (W of an output layer, X@W) with csb a
 * constant 1, so that a step's first 8 values go as one copy of adjacent
 * values, not 8 strided loads (bench/README.md, "Kept: ten columns packed
 * from adjacent values"). */
static void CB_TV(cb_pack_ten)(ptrdiff_t kc, ptrdiff_t cols, const CB_REAL* B, ptrdiff_t rsb,
                               ptrdiff_t csb, CB_REAL* packed) {
    if (CB_PACK_TEN_ADJACENT && csb == 1)
        CB_TV(cb_pack_ten_body)(kc, cols, B, rsb, 1, packed);
    else
        CB_TV(cb_pack_ten_body)(kc, cols, B, rsb, csb, packed);
}
#undef CB_TEN_VEC
#undef CB_TEN_ROWS
#undef CB_TEN_ROWS_FIT
#undef CB_TEN_HALF_BYTES
#undef CB_TEN_H
#undef CB_TEN_BY_STEPS
#undef CB_TEN_FULL
#undef CB_TEN_LANES
#undef CB_TEN_PAYS
#undef CB_TEN_MIN_K
#undef CB_TEN_VARIANT
#undef CB_TV
