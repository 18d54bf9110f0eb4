"""Shared fixtures: every contract test runs against both implementations."""
import numpy as np
import pytest

import cbackprop as cb

IMPLEMENTATIONS = {"compiled": cb.Network, "reference": cb.reference.Network}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def Net(request):
    """The Network class under test: the compiled one or the NumPy reference."""
    return IMPLEMENTATIONS[request.param]


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
