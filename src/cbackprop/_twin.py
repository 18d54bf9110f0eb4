"""A NumPy reference twin of any network, for the utilities that recompute
its maths step by step (``Network.trace``, ``check_gradients``)."""
import numpy as np


def reference_twin(net, dtype):
    """A :class:`cbackprop.reference.Network` with ``net``'s sizes, activations
    and loss, in ``dtype``, holding ``net``'s current parameters cast to it.

    The twin owns copies: changing its parameters never touches ``net``.
    """
    from .reference.network import Network as ReferenceNetwork  # the reference imports the base

    twin = ReferenceNetwork(net.sizes, net.activations, loss=net.loss_function, dtype=dtype)
    weights, biases = net.get_params()
    twin._assign_parameters([np.asarray(w, dtype=dtype) for w in weights],
                            [np.asarray(b, dtype=dtype) for b in biases])
    return twin
