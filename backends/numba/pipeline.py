"""The Numba pipeline generated modules compile through: Numba's own, without the passes
for Python that the code generators never write.

Numba runs every function through some forty passes. Four of them look for constructs that
generated code does not contain, at a cost that grows with the size of its loop bodies: the
rewrites after type inference (array expressions such as ``a + b`` of arrays, and arrays of
constant lists, searched for in every block: 4-15 % of a fused kernel's compile),
``with`` contexts, and ``literally``/``literal_unroll``. A parallel function keeps the
default pipeline (its loops are rewritten into parfors)."""

from __future__ import annotations

from numba.core import compiler, typed_passes, untyped_passes

#: The passes of Numba's default nopython pipeline that generated code does not need.
SKIPPED = (
    typed_passes.NopythonRewrites,
    untyped_passes.WithLifting,
    untyped_passes.FindLiterallyCalls,
    untyped_passes.LiteralUnroll,
    untyped_passes.LiteralPropagationSubPipelinePass,
)


class GeneratedCompiler(compiler.CompilerBase):
    """``pipeline_class`` of the generated modules' njit functions."""

    def define_pipelines(self):
        state = self.state
        if state.flags.force_pyobject or state.flags.auto_parallel.enabled:
            return compiler.Compiler.define_pipelines(self)
        pipeline = compiler.DefaultPassBuilder.define_nopython_pipeline(state)
        pipeline.passes = [p for p in pipeline.passes if p[0] not in SKIPPED]
        return [pipeline]


__all__ = ["SKIPPED", "GeneratedCompiler"]
