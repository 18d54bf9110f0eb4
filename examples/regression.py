"""Fit a noisy sine with a small tanh network, stopping when the validation
loss stops improving and keeping the best epoch's parameters.

Run it from the repository root, with cbackprop installed (``pip install .``)
or built in place (``python setup.py build_ext --inplace``, then prefix
``PYTHONPATH=src``):

    python examples/regression.py          # add --verbose to watch the epochs

The noise has variance 0.01, so a validation MSE near 0.01 is as good as it
gets; predicting the mean would score about 0.5.
"""
import sys

import numpy as np

import cbackprop as cb

NOISE = 0.1


def noisy_sine(rng, m):
    x = rng.uniform(-3, 3, size=(m, 1))
    return x, np.sin(x) + NOISE * rng.standard_normal((m, 1))


def main(verbose=False):
    rng = np.random.default_rng(0)
    X_train, Y_train = noisy_sine(rng, 500)
    X_val, Y_val = noisy_sine(rng, 200)
    net = cb.Network([1, 32, 32, 1], ["tanh", "tanh", "identity"], loss="mse",
                     optimizer=cb.Adam(lr=0.01), seed=0)
    history = net.fit(X_train, Y_train, epochs=500, batch_size=32, seed=0, verbose=verbose,
                      validation_data=(X_val, Y_val), patience=20)
    print(f"epochs run: {len(history['loss'])} of 500 ({history.stop_reason})")
    best, last = history.best_epoch, len(history["loss"])   # epochs numbered from 1
    # restore_best (on by default, with patience) puts the best epoch's
    # parameters back unless they are already the last ones or Ctrl-C stopped fit.
    if history.interrupted:
        kept = "interrupted: parameters as after the last completed step"
    elif best == last:
        kept = "the last epoch, so its parameters are the ones kept"
    else:
        kept = "its parameters restored"
    print(f"best epoch: {best}, val loss {history['val_loss'][best - 1]:.5f}, {kept}")
    print(f"final val loss: {net.loss(X_val, Y_val):.5f} (noise floor {NOISE ** 2:.5f})")


if __name__ == "__main__":
    main(verbose="--verbose" in sys.argv[1:])
