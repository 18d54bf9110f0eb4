# A test-only engine: the AVX-512 row of the tile table (12-row tiles of
# 64-byte vectors) compiled for AVX2, built with CBACKPROP_TEST_TILES=1 and
# never shipped in a wheel. Needs AVX2 and FMA, like _engine_avx2.
include "_engine.pxi"
include "_ops.pxi"
