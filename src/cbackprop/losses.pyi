# cbackprop.losses, where the loss classes are defined at run time: the same
# classes as the package's (declared in its stub); its other names untyped.
from typing import Any

from . import BCE as BCE
from . import CrossEntropy as CrossEntropy
from . import Loss as Loss
from . import MSE as MSE

__all__ = ["MSE", "BCE", "CrossEntropy"]

def __getattr__(name: str) -> Any: ...
