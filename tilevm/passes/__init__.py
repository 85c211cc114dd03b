"""Passes: named, pure functions from program to program: Tile IR to Tile IR, then ``lower_to_threads`` from
Tile IR to Thread IR. ``PIPELINE`` in ``pipeline`` lists them in order; ``run_pipeline`` runs them with one
``CompileOptions``, verifying after each. See docs/passes.md for how to write one and test it with
``tilevm.passes.filecheck``."""

from tilevm.passes.dead_code import remove_dead_code
from tilevm.passes.fold_constants import fold_constants
from tilevm.passes.hoist_loop_invariants import hoist_loop_invariants
from tilevm.passes.infer_layouts import infer_layouts
from tilevm.passes.lower import lower_to_threads
from tilevm.passes.options import CompileOptions
from tilevm.passes.pipeline import PIPELINE, TILE_PASSES, Pass, instruction_set_of, run_pipeline, stages
from tilevm.passes.plan_shared_memory import plan_shared_memory

__all__ = [
    "PIPELINE",
    "TILE_PASSES",
    "CompileOptions",
    "Pass",
    "fold_constants",
    "hoist_loop_invariants",
    "infer_layouts",
    "instruction_set_of",
    "lower_to_threads",
    "plan_shared_memory",
    "remove_dead_code",
    "run_pipeline",
    "stages",
]
