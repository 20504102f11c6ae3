"""The Numba backend: generated, fused, cached kernels.

``register_kernel(*op_classes, may_return_view=False)`` registers the kernel of an op class
(see ``kernels.base.Kernel``), the built-in ops' included; a kernel's function carries the
decorator ``DECORATOR``. An op class without a kernel runs its ``impl`` through an
object-mode call (``pycall``).
"""

from fusegraph.backends.numba.kernels.base import DECORATOR, register_kernel

__all__ = ["DECORATOR", "register_kernel"]
