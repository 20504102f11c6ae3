"""The Numba backend: generated, fused, cached kernels."""
