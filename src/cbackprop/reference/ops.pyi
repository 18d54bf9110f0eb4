# cbackprop.reference.ops: the twins of cbackprop.ops, of the same names and
# signatures (tests/test_ops.py checks), and the reference's maths, one
# function per op and its derivative (untyped here).
from typing import Any

from ..ops import activation_backward as activation_backward
from ..ops import activation_forward as activation_forward
from ..ops import bce as bce
from ..ops import cross_entropy as cross_entropy
from ..ops import dense_backward as dense_backward
from ..ops import dense_forward as dense_forward
from ..ops import gemm as gemm
from ..ops import mse as mse

def __getattr__(name: str) -> Any: ...
