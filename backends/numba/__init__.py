"""The Numba backend: generated, fused, cached kernels.

``register_kernel(*op_classes, may_return_view=False)`` registers the kernel of an op class
(see ``kernels.base.Kernel``), the built-in ops' included.
"""

from fusegraph.backends.numba.kernels.base import register_kernel

__all__ = ["register_kernel"]
