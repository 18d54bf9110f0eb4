"""Seed tutorial 001's two-layer walk-through, number for number, by ``Network.trace``.

The tutorial ("Day 10: Backpropagation Basics", "Extending to Multiple
Layers") feeds one sample x = [1, 2] with target y = 3 through a 2 -> 2
(relu) -> 1 (linear) network with

    W1 = [[0.5, -0.4], [0.3, 0.1]], b1 = [0, 0], W2 = [0.6, -0.2], b2 = 0.1,

uses the squared error L = (y_hat - y)^2 and one gradient-descent step with
eta = 0.1. cbackprop writes the same network with ``W`` of shape
``(fan_in, fan_out)`` and ``Z = A_prev @ W + b``; for one sample and one
output, ``cb.MSE()`` is exactly that squared error.

The trace below shows every number the tutorial works out by hand:
Z1 = [1.1, -0.2], A1 = [1.1, 0], y_hat = 0.76, L = 5.0176,
dL/dy_hat = -4.48, dW2 = [-4.928, 0], db2 = -4.48, dL/dZ1 = [-2.688, 0],
dW1 = [[-2.688, 0], [-5.376, 0]], db1 = [-2.688, 0], and the updated
W1 = [[0.7688, -0.4], [0.8376, 0.1]], b1 = [0.2688, 0], W2 = [1.0928, -0.2],
b2 = 0.548.

Run: ``python examples/trace_seed001.py`` (``--reference`` for the NumPy twin;
both print the same numbers).
"""
import sys

import numpy as np

import cbackprop as cb


def seed001_network(Net=cb.Network):
    """The tutorial's network, with its initial parameters and learning rate."""
    net = Net([2, 2, 1], ["relu", "identity"], loss="mse", optimizer=cb.SGD(lr=0.1),
              dtype="float64")
    net.set_params([np.array([[0.5, -0.4], [0.3, 0.1]]), np.array([[0.6], [-0.2]])],
                   [np.array([0.0, 0.0]), np.array([0.1])])
    return net


def main(argv):
    Net = cb.reference.Network if "--reference" in argv else cb.Network
    net = seed001_network(Net)
    x, y = np.array([1.0, 2.0]), np.array([3.0])
    # apply=False: the network keeps its parameters; trace.layers holds the arrays.
    print(net.trace(x, y))


if __name__ == "__main__":
    main(sys.argv[1:])
