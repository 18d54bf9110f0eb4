"""Test parametrisations derived from the registries (activations, losses,
optimizers), beside the one literal list of the contract's names: a name the
registry drops is caught by tests/test_registry.py, a name it gains is
tested everywhere these lists are used."""
import cbackprop as cb
from cbackprop._activations import ALIASES, REGISTRY

# Every activation name and alias the ops and the Network take.
ACTIVATION_NAMES = list(REGISTRY) + list(ALIASES)
# The activations a hidden layer may have.
HIDDEN = [name for name, entry in REGISTRY.items() if not entry.output_only]
# Those whose derivative needs the pre-activation Z.
NEEDS_Z = [name for name, entry in REGISTRY.items() if entry.derivative == "z"]


def optimizer_instances():
    """A few settings of every registered optimizer, for trajectory tests."""
    by_name = {
        "sgd": [cb.SGD(lr=0.05), cb.SGD(lr=0.05, momentum=0.9),
                cb.SGD(lr=0.05, momentum=0.8, nesterov=True),
                cb.SGD(lr=0.05, momentum=0.5, weight_decay=0.01)],
        "adam": [cb.Adam(lr=0.01), cb.Adam(lr=0.005, beta1=0.8, beta2=0.99, eps=1e-6,
                                           weight_decay=0.001)],
        "rmsprop": [cb.RMSprop(lr=0.01), cb.RMSprop(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.9,
                                                    weight_decay=0.01)],
    }
    assert set(by_name) == set(cb.optimizers.OPTIMIZERS), "give the new optimizer its settings here"
    return [opt for name in cb.optimizers.OPTIMIZERS for opt in by_name[name]]
