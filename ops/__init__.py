"""The op catalogue. Each module holds one op family: its classes (type rule, NumPy
``impl``) and the public functions that build its nodes."""

from fusegraph.graph import install_stack as _install_stack
from fusegraph.ops import checks as _checks
from fusegraph.ops import creation as _creation
from fusegraph.ops import elemwise as _elemwise
from fusegraph.ops import grad_ops as _grad_ops
from fusegraph.ops import indexing as _indexing
from fusegraph.ops import linalg as _linalg
from fusegraph.ops import nn as _nn
from fusegraph.ops import python_op as _python_op
from fusegraph.ops import reduction as _reduction
from fusegraph.ops import shape_ops as _shape_ops
from fusegraph.ops.checks import *  # noqa: F403
from fusegraph.ops.creation import *  # noqa: F403
from fusegraph.ops.elemwise import *  # noqa: F403
from fusegraph.ops.grad_ops import *  # noqa: F403
from fusegraph.ops.indexing import *  # noqa: F403
from fusegraph.ops.linalg import *  # noqa: F403
from fusegraph.ops.nn import *  # noqa: F403
from fusegraph.ops.python_op import *  # noqa: F403
from fusegraph.ops.reduction import *  # noqa: F403
from fusegraph.ops.shape_ops import *  # noqa: F403

# as_tensor([x, y]) stacks the variables: the IR (fusegraph.graph) cannot import this layer.
_install_stack(_shape_ops.stack)

__all__ = [
    *_checks.__all__,
    *_creation.__all__,
    *_elemwise.__all__,
    *_grad_ops.__all__,
    *_indexing.__all__,
    *_linalg.__all__,
    *_nn.__all__,
    *_python_op.__all__,
    *_reduction.__all__,
    *_shape_ops.__all__,
]
