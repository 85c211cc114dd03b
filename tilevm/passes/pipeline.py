"""The pipeline: the passes a program goes through, in order, in one visible list.

``run_pipeline`` verifies the program before the first pass and after every pass, and with a dump directory
writes each stage's text there, numbered and named after the pass that produced it, in a folder per kernel:
``DIR/<kernel>/00-frontend.tir``, ``01-fold_constants.tir``, ... (a later compile of the same kernel, another
specialization say, writes over them).

>>> from tilevm.ir import parse
>>> program = parse('''kernel k(%n: int32) num_threads=32 {
...   %unused: int32 = declare(init=%n * (2 + 3))
... }''')
>>> [name for name, _ in stages(program, CompileOptions())]
['frontend', 'fold_constants', 'remove_dead_code']
>>> print(run_pipeline(program, CompileOptions()))
kernel k(%n: int32) num_threads=32 {
}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from tilevm.errors import CompilationError
from tilevm.ir import Program, print_program, verify
from tilevm.passes.dead_code import remove_dead_code
from tilevm.passes.fold_constants import fold_constants
from tilevm.passes.options import CompileOptions

__all__ = ["FRONTEND_STAGE", "PIPELINE", "Pass", "run_pipeline", "stages"]

Pass = Callable[[Program], Program]

#: every pass, in the order they run
PIPELINE: tuple[Pass, ...] = (
    fold_constants,
    remove_dead_code,
)

#: the name of the stage before the first pass: the front end's program
FRONTEND_STAGE = "frontend"

_NOT_FILE_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_.-]")


def run_pipeline(program: Program, options: CompileOptions) -> Program:
    """The program after every pass of ``PIPELINE`` not disabled by ``options``, verified after each."""
    for _, stage in stages(program, options):
        program = stage
    return program


def stages(program: Program, options: CompileOptions) -> Iterator[tuple[str, Program]]:
    """The front end's program and the program after each pass, with the stage's name, each verified (and
    dumped when ``options.dump_directory`` is set)."""
    known = {pass_function.__name__ for pass_function in PIPELINE}
    unknown = sorted(options.disabled_passes - known)
    if unknown:
        raise ValueError(f"cannot disable unknown passes {unknown}; the passes are {sorted(known)}")
    yield FRONTEND_STAGE, _checked(program, FRONTEND_STAGE, 0, options)
    for number, pass_function in enumerate(PIPELINE, start=1):
        if pass_function.__name__ in options.disabled_passes:
            continue
        program = pass_function(program)
        yield pass_function.__name__, _checked(program, pass_function.__name__, number, options)


def _checked(program: Program, stage: str, number: int, options: CompileOptions) -> Program:
    if options.dump_directory is not None:
        # Written before verifying, so that the text of a program a pass broke can be read.
        folder = options.dump_directory / (_NOT_FILE_NAME_CHARACTER.sub("_", program.name) or "kernel")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number:02d}-{stage}.tir").write_text(print_program(program) + "\n")
    try:
        return verify(program)
    except CompilationError as error:
        if stage == FRONTEND_STAGE:
            raise
        raise CompilationError(
            f"{error.message} (in the program after pass {stage})", error.location
        ) from None
