"""fusegraph: build symbolic tensor graphs, differentiate them and compile them.

import fusegraph as fg
x = fg.vector("x")
f = fg.function([x], fg.exp(x).sum())
"""

from fusegraph.constructors import matrix, scalar, tensor, tensor3, tensor4, vector
from fusegraph.derivatives import hessian, hessian_vector_product, jacobian, verify_grad
from fusegraph.errors import (
    DebugModeError,
    DisconnectedInputError,
    GradientError,
    MissingInputError,
    NullTypeGradError,
    UnusedInputError,
)
from fusegraph.function import Function, function
from fusegraph.gradient import DisconnectedType, Lop, Rop, grad
from fusegraph.graph import (
    Apply,
    Constant,
    FunctionGraph,
    NullGrad,
    Op,
    Variable,
    as_tensor,
    constant,
)
from fusegraph.mode import Mode
from fusegraph.ops import *  # noqa: F403 - the op catalogue is the public API
from fusegraph.ops import __all__ as _ops_all
from fusegraph.printing import dprint, pprint, to_dot
from fusegraph.random import RandomStream
from fusegraph.shared import SharedVariable, shared
from fusegraph.types import TensorType

__all__ = [
    "Apply",
    "Constant",
    "DebugModeError",
    "DisconnectedInputError",
    "DisconnectedType",
    "Function",
    "FunctionGraph",
    "GradientError",
    "Lop",
    "NullGrad",
    "Rop",
    "MissingInputError",
    "Mode",
    "NullTypeGradError",
    "Op",
    "RandomStream",
    "SharedVariable",
    "TensorType",
    "UnusedInputError",
    "Variable",
    "as_tensor",
    "constant",
    "dprint",
    "function",
    "grad",
    "hessian",
    "hessian_vector_product",
    "jacobian",
    "matrix",
    "pprint",
    "scalar",
    "shared",
    "tensor",
    "tensor3",
    "tensor4",
    "to_dot",
    "vector",
    "verify_grad",
    *_ops_all,
]
