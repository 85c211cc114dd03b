"""Helpers of the code generation tests: assembling PTX with ptxas (the reference for what is valid PTX for a
chip), and compiling many kernels in a child process, where an LLVM abort cannot take pytest down."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tilevm.runtime.cuda.ptxas import find_ptxas

__all__ = ["ChildOutcome", "assemble", "assemble_together", "compile_in_child", "registers_used"]

TESTS = Path(__file__).parent
#: the ptxas that tilevm itself would use: the nvidia-cuda-nvcc wheel's (the test extra), else PATH's
PTXAS = find_ptxas() or "ptxas"
_HEADER = re.compile(r"^\s*\.(version|target|address_size)\b.*$", re.MULTILINE)


def assemble(ptx: str, target: str, verbose: bool = False) -> str:
    """Assemble ``ptx`` for ``target`` with ptxas; an AssertionError with ptxas's message if it fails.
    Returns what ptxas wrote, with ``verbose`` its resource report (``-v``: registers, spills)."""
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "kernel.ptx"
        source.write_text(ptx)
        flags = ["-v"] if verbose else []
        result = subprocess.run(
            [PTXAS, *flags, f"-arch={target}", str(source), "-o", str(Path(directory) / "kernel.cubin")],
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, f"ptxas -arch={target} failed:\n{result.stderr}"
    return result.stderr


def registers_used(report: str) -> int:
    """The registers a thread takes, from ptxas's ``-v`` report of one kernel."""
    return int(re.search(r"Used (\d+) registers", report).group(1))


def assemble_together(ptx_by_name: dict[str, str], target: str) -> list[str]:
    """Assemble many kernels' PTX as one file (one ptxas run); the names of those that fail alone, if the
    whole does not assemble."""
    if not ptx_by_name:
        return []
    texts = list(ptx_by_name.values())
    merged = "\n".join([texts[0], *(_HEADER.sub("", text) for text in texts[1:])])
    try:
        assemble(merged, target)
    except AssertionError:
        return [name for name, ptx in ptx_by_name.items() if not _assembles(ptx, target)]
    return []


def _assembles(ptx: str, target: str) -> bool:
    try:
        assemble(ptx, target)
    except AssertionError:
        return False
    return True


@dataclass(frozen=True)
class ChildOutcome:
    """What compiling one form gave: ``ptx``, or ``refused`` (a CodegenError's message), ``error`` (any
    other exception) or ``crashed`` (the process died: LLVM's abort message)."""

    ptx: str | None = None
    refused: str | None = None
    error: str | None = None
    crashed: str | None = None


_CHILD = """
import json, sys, traceback
sys.path.insert(0, {tests!r})
from codegen_forms import all_forms
from tilevm.codegen import CodegenError, compile_to_ptx
from tilevm.codegen.targets import Target
target, names, unguarded = json.loads(sys.stdin.read())
if unguarded:  # every feature claimed: what LLVM and ptxas do without the table's guard
    Target.has = lambda self, feature: True
forms = {{form.name: form for form in all_forms()}}
for name in names:
    try:
        outcome = {{"ptx": compile_to_ptx(forms[name].program, target).ptx}}
    except CodegenError as error:
        outcome = {{"refused": str(error)}}
    except Exception:
        outcome = {{"error": traceback.format_exc()}}
    print(json.dumps([name, outcome]), flush=True)
"""


def compile_in_child(target: str, names: list[str], unguarded: bool = False) -> dict[str, ChildOutcome]:
    """Compile the forms ``names`` of ``codegen_forms`` for ``target`` in child processes, in order; a child
    that dies marks the form it died on as crashed and a new one goes on with the rest."""
    outcomes: dict[str, ChildOutcome] = {}
    remaining = list(names)
    while remaining:
        result = subprocess.run(
            [sys.executable, "-c", _CHILD.format(tests=str(TESTS))],
            input=json.dumps([target, remaining, unguarded]),
            capture_output=True,
            text=True,
            check=False,
        )
        for line in result.stdout.splitlines():
            name, outcome = json.loads(line)
            outcomes[name] = ChildOutcome(**outcome)
        remaining = [name for name in remaining if name not in outcomes]
        if remaining:
            if result.returncode == 0:
                raise AssertionError(f"the child compiling for {target} stopped early:\n{result.stderr}")
            last_line = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            outcomes[remaining.pop(0)] = ChildOutcome(crashed=f"exit status {result.returncode}: {last_line}")
    return outcomes
