"""Backends that run a ``FunctionGraph``: ``py`` (interpreted NumPy, the reference)."""
