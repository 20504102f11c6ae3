"""fusegraph: build symbolic tensor graphs, differentiate them and compile them.

    import fusegraph as fg
    x = fg.vector("x")
    f = fg.function([x], fg.exp(x).sum())
"""

from fusegraph.constructors import matrix, scalar, tensor, tensor3, tensor4, vector
from fusegraph.errors import (
    DisconnectedInputError,
    GradientError,
    MissingInputError,
    NullTypeGradError,
    UnusedInputError,
)
from fusegraph.function import Function, function
from fusegraph.graph import Apply, Constant, FunctionGraph, Op, Variable, as_tensor, constant
from fusegraph.mode import Mode
from fusegraph.ops import *  # noqa: F403 - the op catalogue is the public API
from fusegraph.ops import __all__ as _ops_all
from fusegraph.printing import dprint, pprint, to_dot
from fusegraph.shared import SharedVariable, shared
from fusegraph.types import TensorType

__all__ = [
    "Apply",
    "Constant",
    "DisconnectedInputError",
    "Function",
    "FunctionGraph",
    "GradientError",
    "MissingInputError",
    "Mode",
    "NullTypeGradError",
    "Op",
    "SharedVariable",
    "TensorType",
    "UnusedInputError",
    "Variable",
    "as_tensor",
    "constant",
    "dprint",
    "function",
    "matrix",
    "pprint",
    "scalar",
    "shared",
    "tensor",
    "tensor3",
    "tensor4",
    "to_dot",
    "vector",
    *_ops_all,
]
