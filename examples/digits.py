"""Classify scikit-learn's 8x8 handwritten digits with a softmax network,
early-stopped on a validation split, then scored once on a held-out test set.

Needs scikit-learn (``pip install ".[examples]"`` installs both). Run it
from the repository root, with cbackprop installed or built in place
(``python setup.py build_ext --inplace``, then prefix ``PYTHONPATH=src``):

    python examples/digits.py              # add --verbose to watch the epochs
"""
import sys

import numpy as np
from sklearn.datasets import load_digits

import cbackprop as cb


def split(n, rng, fractions=(0.6, 0.2)):
    """Shuffled indices of a train, a validation and a test set."""
    order = rng.permutation(n)
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def main(verbose=False):
    X, labels = load_digits(return_X_y=True)
    train, val, test = split(len(X), np.random.default_rng(0))
    # Standardise with the training set's statistics only; pixels that are
    # always blank there (std 0) stay 0.
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    X = (X - mean) / np.where(std > 0, std, 1.0)

    net = cb.Network([64, 64, 10], ["relu", "softmax"], loss="cross_entropy",
                     optimizer=cb.Adam(lr=3e-3), seed=0)
    history = net.fit(X[train], labels[train], epochs=200, batch_size=32, seed=0,
                      verbose=verbose, validation_data=(X[val], labels[val]), patience=5)
    best = history.best_epoch
    print(f"epochs run: {len(history['loss'])} ({history.stop_reason})")
    print(f"best epoch {best}: val loss {history['val_loss'][best - 1]:.4f}, "
          f"val accuracy {history['val_accuracy'][best - 1]:.4f}")
    predicted = net.predict(X[test]).argmax(axis=1)
    print(f"test accuracy: {np.mean(predicted == labels[test]):.4f} on {len(test)} digits")


if __name__ == "__main__":
    main(verbose="--verbose" in sys.argv[1:])
