/* The ten-column tiles of tiles_template.h, for one dtype and one vector
 * width: included with CB_TEN_VARIANT (a name suffix), CB_TEN_LANES (lanes
 * per vector: 2, 4 or 8) and CB_TEN_PAYS (whether they beat a padded tile)
 * defined, which it undefines.
 *
 * Products of 9 or 10 columns (an output layer of 10 classes), any op(A):
 * padded to whole vectors, a tile spends up to a third of its FMAs on
 * padding columns. Columns 0-7 go in vectors of TEN_LANES as usual, columns
 * 8-9 two lanes per row, so that one vector holds the last two results of
 * TEN_LANES/2 rows: [C[i,8] C[i,9] C[i+1,8] C[i+1,9] ...], against a B sliver
 * packed as [b0..b7, (b8 b9) repeated]. A tile is TEN_LANES rows, A read in
 * place. */
#define CB_TV(name) CB_(CB_CAT(name, CB_TEN_VARIANT))
#define CB_TEN_FULL (8 / CB_TEN_LANES)          /* whole vectors: columns 0-7 */
#define CB_TEN_PER_PAIR (CB_TEN_LANES / 2)      /* rows sharing a vector for columns 8-9 */
typedef CB_REAL CB_TV(cb_ten_vec) __attribute__((vector_size(CB_TEN_LANES * sizeof(CB_REAL)),
                                                aligned(sizeof(CB_REAL)), may_alias));
typedef CB_INDEX CB_TV(cb_ten_index) __attribute__((vector_size(CB_TEN_LANES * sizeof(CB_INDEX))));
#define CB_TEN_VEC CB_TV(cb_ten_vec)

static inline ptrdiff_t CB_TV(cb_ten_rows)(void) { return CB_TEN_LANES; }
static inline int CB_TV(cb_ten_pays)(void) { return CB_TEN_PAYS; }
static inline ptrdiff_t CB_TV(cb_ten_lanes)(void) { return CB_TEN_LANES; }
static inline ptrdiff_t CB_TV(cb_ten_width)(void) { return 8 + CB_TEN_LANES; }

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

static void CB_TV(cb_pack_ten)(ptrdiff_t kc, ptrdiff_t cols, const CB_REAL* B, ptrdiff_t rsb,
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

/* C[:rows, :cols] (=|+=) op(A) rows @ a packed ten-column sliver, rows <= TEN_LANES,
 * 9 <= cols <= 10; rows past `rows` re-read the last real one. */
static void CB_TV(cb_ten)(ptrdiff_t kc, const CB_REAL* a, ptrdiff_t a_rs, ptrdiff_t a_cs,
                        const CB_REAL* b, CB_REAL* C, ptrdiff_t ldc, ptrdiff_t rows,
                        ptrdiff_t cols, int overwrite) {
    const CB_REAL* row[CB_TEN_LANES];
    CB_TEN_VEC acc[CB_TEN_LANES][CB_TEN_FULL];
    CB_TEN_VEC pair[2];
    for (int i = 0; i < CB_TEN_LANES; i++) {
        row[i] = a + (i < rows ? i : rows - 1) * a_rs;
        for (int f = 0; f < CB_TEN_FULL; f++)
            acc[i][f] = (CB_TEN_VEC){0};
    }
    pair[0] = pair[1] = (CB_TEN_VEC){0};
    ptrdiff_t k = 0;
    for (ptrdiff_t p = 0; p < kc; p++) {
        CB_TEN_VEC bv[CB_TEN_FULL];
        for (int f = 0; f < CB_TEN_FULL; f++)
            bv[f] = *(const CB_TEN_VEC*)(b + f * CB_TEN_LANES);
        const CB_TEN_VEC b89 = *(const CB_TEN_VEC*)(b + 8);
        for (int g = 0; g < 2; g++) {
            CB_TEN_VEC splat[CB_TEN_PER_PAIR];
            for (int r = 0; r < CB_TEN_PER_PAIR; r++) {
                const int i = g * CB_TEN_PER_PAIR + r;
                splat[r] = row[i][k] - (CB_TEN_VEC){0};
                CB_IN_REGISTER(splat[r]);
                for (int f = 0; f < CB_TEN_FULL; f++)
                    acc[i][f] += splat[r] * bv[f];
            }
            pair[g] += CB_TV(cb_ten_pairs)(splat) * b89;
        }
        k += a_cs;
        b += 8 + CB_TEN_LANES;
    }
    /* Columns 0-7 straight into C; 8 and 9 from their lanes of the pair vectors. */
    CB_REAL pairs[2][CB_TEN_LANES];
    for (int g = 0; g < 2; g++)
        *(CB_TEN_VEC*)pairs[g] = pair[g];
    for (int i = 0; i < CB_TEN_LANES; i++) {
        if (i >= rows)
            break;
        for (int f = 0; f < CB_TEN_FULL; f++) {
            CB_REAL* out = C + i * ldc + f * CB_TEN_LANES;
            CB_TEN_VEC result = acc[i][f];
            if (!overwrite)
                result += *(const CB_TEN_VEC*)out;
            *(CB_TEN_VEC*)out = result;
        }
        const CB_REAL* last = &pairs[i / CB_TEN_PER_PAIR][2 * (i % CB_TEN_PER_PAIR)];
        CB_(cb_store_corner)(last, 0, C + i * ldc + 8, ldc, 1, cols - 8, overwrite);
    }
}
#undef CB_TEN_VEC
#undef CB_TEN_PER_PAIR
#undef CB_TEN_FULL
#undef CB_TEN_LANES
#undef CB_TEN_PAYS
#undef CB_TEN_VARIANT
#undef CB_TV
