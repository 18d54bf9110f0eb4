"""The debug build (CBACKPROP_DEBUG_CYTHON=1, run by .ci/run) guards every
buffer region the kernels write and checks the guards after each pass."""
import numpy as np
import pytest

import cbackprop as cb
from cbackprop._backend import engine

pytestmark = pytest.mark.skipif(not engine.debug_guards(),
                                reason="release build: guard zones exist only in the debug build")


def test_a_clobbered_guard_is_reported():
    net = cb.Network([3, 5, 2], ["relu", "identity"], seed=0)
    X = np.ones((4, 3))
    net.forward(X)                       # sizes the workspace and arms its guards
    net._engine.workspace[:] = 0         # what a runaway kernel would do
    with pytest.raises(AssertionError, match="out-of-bounds write"):
        net.forward(X)


def test_parameter_arrays_are_guarded_too():
    net = cb.Network([3, 5, 2], ["relu", "identity"], seed=0)
    net._engine.params[net._engine.n_params] = 0.0
    with pytest.raises(AssertionError, match="past parameters"):
        net.train_step(np.ones((4, 3)), np.zeros((4, 2)))
