# Memory of the engine: 64-byte aligned arrays, the workspace of one network
# (its regions laid out for the largest batch seen so far) and the guard
# zones of a debug build.

cdef enum:
    ALIGN = 16  # workspace blocks start on 64-byte boundaries (16 floats)

# Debug builds (CBACKPROP_DEBUG_CYTHON=1) put a guard zone after every buffer
# region the kernels write, fill it with a NaN carrying a marker payload, and
# verify it after every pass: an out-of-bounds write becomes an error, and an
# out-of-bounds read brings NaN into the results.
cdef extern from *:
    """
    #ifndef CBACKPROP_DEBUG_GUARDS
    #define CBACKPROP_DEBUG_GUARDS 0
    #endif
    """
    const int CBACKPROP_DEBUG_GUARDS

cdef Py_ssize_t GUARD = 64 if CBACKPROP_DEBUG_GUARDS else 0
GUARD_BITS = {4: np.uint32(0x7FC0FFEE), 8: np.uint64(0x7FF8C0FFEE0BAD00)}


def debug_guards():
    """True in a debug build, where buffer overruns are detected."""
    return GUARD > 0


cdef class Guards:
    """Guard zones of one set of arrays (empty in release builds)."""
    cdef list zones   # (array, start, name)

    def __cinit__(self):
        self.zones = []

    cdef void add(self, cnp.ndarray array, Py_ssize_t start, str name):
        if GUARD:
            array[start:start + GUARD].view(GUARD_BITS[array.itemsize].dtype)[:] = GUARD_BITS[array.itemsize]
            self.zones.append((array, start, name))

    cdef int verify(self, str where) except -1:
        for array, start, name in self.zones:
            bits = array[start:start + GUARD].view(GUARD_BITS[array.itemsize].dtype)
            if not (bits == GUARD_BITS[array.itemsize]).all():
                raise AssertionError(f"out-of-bounds write past {name} during {where}")
        return 0


cdef inline void* data(cnp.ndarray array) noexcept:
    return cnp.PyArray_DATA(array)


cdef inline Py_ssize_t elements_to_line(cnp.ndarray array) noexcept:
    """Elements from the start of ``array`` to its first 64-byte line (numpy
    aligns its memory to the item size, so the bytes divide evenly); an
    array of ``64 // itemsize`` spare elements holds its data from there."""
    cdef size_t address = <size_t>data(array)
    return ((64 - address % 64) % 64) // cnp.PyArray_ITEMSIZE(array)


cdef cnp.ndarray aligned_zeros(Py_ssize_t n, object dtype):
    """n zeros starting on a 64-byte boundary (a view into a slightly larger
    array): the GEMM reads a B in place only from rows that start on 64-byte
    cache lines (the first layer's weights), and fit's gathered rows are
    copied in whole vectors that never straddle two lines."""
    block = np.zeros(n + 64 // np.dtype(dtype).itemsize, dtype=dtype)
    cdef Py_ssize_t shift = elements_to_line(block)
    return block[shift:shift + n]


cdef Py_ssize_t claim(Py_ssize_t* cursor, list regions, Py_ssize_t size, str name):
    """The start of a new region of ``size`` elements at ``cursor``, which moves
    past it and its guard zone to the next aligned block."""
    cdef Py_ssize_t start = cursor[0]
    regions.append((start, size, name))
    cursor[0] = round_up(start + size + GUARD, ALIGN)
    return start


cdef class Workspace:
    """Activations, kept pre-activations, deltas and GEMM panels of one
    network, for batches of up to ``capacity`` rows: grown when a larger
    batch comes, never shrunk, so a steady-state training step allocates
    nothing. Offsets go into the network's Layout."""
    cdef cnp.ndarray array
    cdef Py_ssize_t shift          # elements from the array start to the aligned base
    cdef readonly Py_ssize_t capacity
    cdef Guards guards

    def __cinit__(self):
        self.capacity = 0
        self.guards = Guards()

    cdef void* base(self):
        """The aligned start of the regions; NULL before the first reserve."""
        if self.array is None:
            return NULL
        return <char*>data(self.array) + self.shift * cnp.PyArray_ITEMSIZE(self.array)

    cdef int reserve(self, Layout* L, Py_ssize_t m, list needs_z, Py_ssize_t* output_offset,
                     Py_ssize_t* z_offset, object dtype) except -1:
        """Lay the regions out for ``m`` rows, more than ``capacity`` (the
        caller tests that), and write their offsets into L, ``output_offset``
        and ``z_offset``."""
        cdef Py_ssize_t layer, widest = 0, widest_delta = 0, cursor = 0, pack_a, pack_b
        cdef list regions = []   # (start, size, name), for the guards of a debug build
        # The offsets below are written before the array is allocated: until
        # it is, no batch fits, so that a call after a failed allocation (a
        # MemoryError) lays them out again rather than run on offsets past
        # the old array.
        self.capacity = 0
        for layer in range(L.n_layers + 1):
            widest = max(widest, L.sizes[layer])
        # A delta is a layer's output's: the input's width (784 for MNIST)
        # never needs one (its delta is not computed).
        for layer in range(1, L.n_layers + 1):
            widest_delta = max(widest_delta, L.sizes[layer])
        for layer in range(L.n_layers):
            output_offset[layer] = claim(&cursor, regions, m * L.sizes[layer + 1],
                                         f"the activations of layer {layer}")
        L.logits_offset = claim(&cursor, regions, m * L.sizes[L.n_layers], "the logits")
        # Hidden layers are activated in place unless their derivative needs Z.
        for layer in range(L.n_layers - 1):
            z_offset[layer] = output_offset[layer]
            if needs_z[layer]:
                z_offset[layer] = claim(&cursor, regions, m * L.sizes[layer + 1],
                                        f"the pre-activations of layer {layer}")
        z_offset[L.n_layers - 1] = L.logits_offset
        for layer in range(2):
            L.delta_offset[layer] = claim(&cursor, regions, m * widest_delta,
                                          f"delta buffer {layer}")
        # GEMM shapes: M and K range over the batch and the widths, N over the widths.
        if np.dtype(dtype) == np.float32:
            pack_a = gemm_pack_a_size(max(m, widest), max(m, widest), <float*>NULL)
            pack_b = gemm_pack_b_size(widest, max(m, widest), <float*>NULL)
        else:
            pack_a = gemm_pack_a_size(max(m, widest), max(m, widest), <double*>NULL)
            pack_b = gemm_pack_b_size(widest, max(m, widest), <double*>NULL)
        L.pack_a_offset = claim(&cursor, regions, pack_a, "the packed A panel")
        L.pack_b_offset = claim(&cursor, regions, pack_b, "the packed B panel")
        # One spare alignment block so that the base itself can be aligned.
        self.array = np.empty(cursor + ALIGN, dtype=dtype)
        self.shift = elements_to_line(self.array)
        self.guards = Guards()
        for start, size, name in regions:
            self.guards.add(self.array, self.shift + start + size, name)
        self.capacity = m
        return 0
