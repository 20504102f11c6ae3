"""Numba kernels for the ops that are not fused elementwise loops: ``kernel_source(op, in_types,
out_types, name)`` renders one njit function computing exactly what ``op.impl`` computes.
One module per op family registers its kernels; ``base`` holds the dispatcher and helpers."""

# Conventions of a kernel (the module generator relies on them):
# - ``def <name>(i0, i1, ...)`` takes the node's inputs as arrays (0-d inputs are 0-d arrays,
#   read with ``i[()]``) and returns the output array (0-d outputs are 0-d arrays), or a tuple
#   for several outputs. It is specialised on the static ``in_types``/``out_types`` (ndim,
#   dtype, static dims) and needs the globals of ``IMPORTS``.
# - Errors raise NumPy's exception class with a constant message; the Function wrapper re-runs
#   the py backend to build the detailed one.
# - Results may be views of inputs where NumPy's are (DimShuffle, Subtensor, BroadcastTo,
#   Reshape of a C-contiguous input); otherwise they are new arrays.
#
# dot on transposed operands: float products call BLAS (gemm/gemv/dot) through ``blas_dot``
# (``blas.py``), which passes operands whose Numba type has layout C or F as they are, with a
# transpose flag for F. A DimShuffle that transposes a 2-d C array renders as ``x.T``, typed
# F-layout, so a following Dot calls gemm with transa/transb set and copies nothing. Only
# operands typed "A" (non-contiguous: strided slices, higher-d transposes) are copied to C
# first, as NumPy copies them too.
# Integer and bool products have no BLAS: they run explicit loops over any layout (no copies),
# accumulating in int64/uint64 and wrapping to the output dtype as NumPy's loops do.

# pycall registers the kernel of fg.as_op's PythonOp, the object-mode call.
from fusegraph.backends.numba import pycall  # noqa: F401
from fusegraph.backends.numba.kernels import (  # noqa: F401
    blas,
    indexing,
    linalg,
    random,
    reduction,
    shape,
)
from fusegraph.backends.numba.kernels.base import (
    DECORATOR,
    IMPORTS,
    KERNELS,
    Kernel,
    as_c,
    kernel_of,
    kernel_source,
    register_kernel,
    slice_range,
    unsupported,
)
from fusegraph.backends.numba.kernels.blas import blas_dot

__all__ = [
    "IMPORTS",
    "KERNELS",
    "DECORATOR",
    "Kernel",
    "kernel_of",
    "register_kernel",
    "kernel_source",
    "blas_dot",
    "as_c",
    "slice_range",
    "unsupported",
]
