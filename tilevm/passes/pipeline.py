"""The pipeline: the passes a program goes through, in order, in one visible list.

The passes of ``TILE_PASSES`` take Tile IR to Tile IR (with layouts and a shared-memory plan at the end);
``lower_to_threads``, last, gives the Thread IR that the SIMT interpreter and code generation run.
``run_pipeline`` verifies the program before the first pass and, when ``options.verify_passes`` asks (the
tests', ``TILEVM_VERIFY=1``), after every pass, each with its instruction set; with a dump directory it
writes each stage's text there, numbered and named after the pass that produced it, in a folder per
kernel: ``DIR/<kernel>/00-frontend.tir``, ``01-fold_constants.tir``, ..., ``06-lower_to_threads.tir`` (a
later compile of the same kernel, another specialization say, writes over them).

>>> from tilevm.ir import parse
>>> program = parse('''kernel k(%n: int32) num_threads=32 {
...   %unused: int32 = declare(init=%n * (2 + 3))
... }''')
>>> [name for name, _ in stages(program, CompileOptions())]  # doctest: +NORMALIZE_WHITESPACE
['frontend', 'fold_constants', 'remove_dead_code', 'infer_layouts', 'hoist_loop_invariants',
 'plan_shared_memory', 'lower_to_threads']
>>> print(run_pipeline(program, CompileOptions(), TILE_PASSES))
kernel k(%n: int32) num_threads=32 {
}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from tilevm.errors import CompilationError
from tilevm.ir import TILE_IR, InstructionSet, Program, print_program, verify
from tilevm.ir.thread import THREAD_IR
from tilevm.passes.dead_code import remove_dead_code
from tilevm.passes.fold_constants import fold_constants
from tilevm.passes.hoist_loop_invariants import hoist_loop_invariants
from tilevm.passes.infer_layouts import infer_layouts
from tilevm.passes.lower import lower_to_threads
from tilevm.passes.options import CompileOptions
from tilevm.passes.plan_shared_memory import plan_shared_memory

__all__ = [
    "FRONTEND_STAGE",
    "PIPELINE",
    "TILE_PASSES",
    "Pass",
    "dump_stage",
    "instruction_set_of",
    "run_pipeline",
    "stages",
]

Pass = Callable[[Program], Program]

#: the passes on Tile IR, in the order they run: what the block-level reference executor runs comes after them
TILE_PASSES: tuple[Pass, ...] = (
    fold_constants,
    remove_dead_code,
    infer_layouts,
    hoist_loop_invariants,
    plan_shared_memory,
)

#: every pass, in the order they run
PIPELINE: tuple[Pass, ...] = (*TILE_PASSES, lower_to_threads)

#: the name of the stage before the first pass: the front end's program
FRONTEND_STAGE = "frontend"

_NOT_FILE_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_.-]")


def run_pipeline(
    program: Program, options: CompileOptions, passes: tuple[Pass, ...] | None = None
) -> Program:
    """The program after every pass of ``passes`` (all of ``PIPELINE``, Thread IR at the end, when None) not
    disabled by ``options``, verified after each when ``options.verify_passes``."""
    for _, stage in stages(program, options, passes):
        program = stage
    return program


def stages(
    program: Program, options: CompileOptions, passes: tuple[Pass, ...] | None = None
) -> Iterator[tuple[str, Program]]:
    """The front end's program and the program after each pass of ``passes``, with the stage's name, each
    verified (and dumped when ``options.dump_directory`` is set). When ``passes`` starts later than the
    pipeline does (the lowering of a program already through the Tile IR passes), ``program`` is the
    output of an earlier stage and is not given again."""
    passes = PIPELINE if passes is None else passes
    known = {pass_function.__name__ for pass_function in PIPELINE}
    unknown = sorted(options.disabled_passes - known)
    if unknown:
        raise ValueError(f"cannot disable unknown passes {unknown}; the passes are {sorted(known)}")
    if passes[:1] == PIPELINE[:1]:
        yield FRONTEND_STAGE, _checked(program, FRONTEND_STAGE, 0, options)
    for pass_function in passes:
        if pass_function.__name__ in options.disabled_passes:
            continue
        program = pass_function(program)
        number = PIPELINE.index(pass_function) + 1
        yield pass_function.__name__, _checked(program, pass_function.__name__, number, options)


def dump_stage(options: CompileOptions, kernel: str, file_name: str, text: str) -> None:
    """Write ``text`` as ``file_name`` in kernel ``kernel``'s folder of the dump directory, if there is one;
    code generation writes its stages (``07-llvm_ir.ll``, ``08-ptx.ptx``) beside the passes' this way."""
    if options.dump_directory is None:
        return
    folder = options.dump_directory / (_NOT_FILE_NAME_CHARACTER.sub("_", kernel) or "kernel")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_text(text + "\n")


def instruction_set_of(stage: str) -> InstructionSet:
    """The instruction set of the program a stage gives: Thread IR from the lowering on, Tile IR before."""
    return THREAD_IR if stage == lower_to_threads.__name__ else TILE_IR


def _checked(program: Program, stage: str, number: int, options: CompileOptions) -> Program:
    instruction_set = instruction_set_of(stage)
    if options.dump_directory is not None:
        # Written before verifying, so that the text of a program a pass broke can be read.
        dump_stage(
            options, program.name, f"{number:02d}-{stage}.tir", print_program(program, instruction_set)
        )
    if stage != FRONTEND_STAGE and not options.verify_passes:
        return program
    try:
        return verify(program, instruction_set)
    except CompilationError as error:
        if stage == FRONTEND_STAGE:
            raise
        raise CompilationError(
            f"{error.message} (in the program after pass {stage})", error.location
        ) from None
