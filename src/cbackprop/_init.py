"""Seeded parameter initialisation, shared by both implementations so that
the same seed gives the same starting parameters in each."""
import numpy as np

from ._activations import REGISTRY
from ._checks import is_name_among

INITS = ("auto", "xavier", "he")


def check_init(init):
    if not is_name_among(init, INITS):
        raise ValueError(f"unknown init {init!r}: use one of {INITS}")
    return str(init)


def initial_parameters(sizes, activations, init, seed, dtype):
    """He-normal or Glorot-uniform, as each activation's registry entry says for
    ``init="auto"`` (He for relu and leaky_relu);
    biases start at zero. Drawn in float64 then cast, so float32 and float64
    nets with the same seed start from the same values."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out, activation in zip(sizes[:-1], sizes[1:], activations):
        scheme = init
        if scheme == "auto":
            scheme = REGISTRY[activation].init
        if scheme == "he":
            w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        else:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        weights.append(w.astype(dtype))
        biases.append(np.zeros(fan_out, dtype=dtype))
    return weights, biases
