"""Passes: named, pure functions from Tile IR program to Tile IR program. ``PIPELINE`` in ``pipeline`` lists
them in order; ``run_pipeline`` runs them with one ``CompileOptions``, verifying after each. See
docs/passes.md for how to write one and test it with ``tilevm.passes.filecheck``."""

from tilevm.passes.dead_code import remove_dead_code
from tilevm.passes.fold_constants import fold_constants
from tilevm.passes.infer_layouts import infer_layouts
from tilevm.passes.options import CompileOptions
from tilevm.passes.pipeline import PIPELINE, Pass, run_pipeline, stages

__all__ = [
    "PIPELINE",
    "CompileOptions",
    "Pass",
    "fold_constants",
    "infer_layouts",
    "remove_dead_code",
    "run_pipeline",
    "stages",
]
