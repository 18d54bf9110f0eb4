"""XOR with the smallest network that can learn it: 2 inputs, 2 sigmoid hidden
units, 1 sigmoid output, as in the hand-worked tutorial of the project's seeds.

Run it from the repository root, with cbackprop installed (``pip install .``)
or built in place (``python setup.py build_ext --inplace``, then prefix
``PYTHONPATH=src``):

    python examples/xor.py

The tutorial trains with W <- W - 0.1 * a_prev.T @ delta for 10000 full-batch
steps on the loss 0.5 * sum((a - y)**2): that is cbackprop's
MSE(scale=0.5, reduction="sum") with SGD(lr=0.1). (Its fourth sample reads
[-1, 1]; XOR's fourth row is [1, 1], used here.)
"""
import numpy as np

import cbackprop as cb

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
Y = np.array([0, 1, 1, 0], dtype=float)


def main():
    net = cb.Network([2, 2, 1], ["sigmoid", "sigmoid"], loss=cb.MSE(scale=0.5, reduction="sum"),
                     optimizer=cb.SGD(lr=0.1), seed=0)
    history = net.fit(X, Y, epochs=10000, batch_size=len(X), shuffle=False)
    print(f"loss after {len(history['loss'])} epochs: {history['loss'][-1]:.5f}")
    print("x1 x2  target  output  predicted")
    for (x1, x2), target, output in zip(X, Y, net.predict(X)[:, 0]):
        print(f"{x1:2.0f} {x2:2.0f}  {target:6.0f}  {output:6.3f}  {int(output > 0.5):9d}")


if __name__ == "__main__":
    main()
