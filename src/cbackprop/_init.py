"""Seeded parameter initialisation, shared by both implementations so that
the same seed gives the same starting parameters in each."""
import numpy as np

INITS = ("auto", "xavier", "he")


def check_init(init):
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}: use one of {INITS}")
    return init


def initial_parameters(sizes, activations, init, seed, dtype):
    """He-normal for relu-like layers, Glorot-uniform otherwise (``init="auto"``);
    biases start at zero. Drawn in float64 then cast, so float32 and float64
    nets with the same seed start from the same values."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out, activation in zip(sizes[:-1], sizes[1:], activations):
        scheme = init
        if scheme == "auto":
            scheme = "he" if activation in ("relu", "leaky_relu") else "xavier"
        if scheme == "he":
            w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        else:
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        weights.append(w.astype(dtype))
        biases.append(np.zeros(fan_out, dtype=dtype))
    return weights, biases
