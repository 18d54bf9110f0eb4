# cbackprop.optimizers, where the optimizer classes are defined at run time:
# the same classes as the package's (declared in its stub); its other names untyped.
from typing import Any

from . import SGD as SGD
from . import Adam as Adam
from . import Optimizer as Optimizer
from . import RMSprop as RMSprop

__all__ = ["SGD", "Adam", "RMSprop"]

def __getattr__(name: str) -> Any: ...
