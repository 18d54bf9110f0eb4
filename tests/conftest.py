"""Shared fixtures: every contract test runs against both implementations."""
import signal

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


@pytest.fixture(autouse=True, scope="session")
def python_sigint_handler():
    """The interrupt tests send this process real SIGINTs and check that
    Python's own handler is back afterwards. A non-interactive shell that
    starts the suite in the background leaves SIGINT ignored (POSIX), and
    Python then keeps it ignored; so the suite installs that handler itself."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
