"""The phases of a kernel's first launch, timed inside the process that makes it: what ``compile_time.py``
and ``first_launch.py`` print, so that a first launch's wall time is explained by its parts.

``instrument(clock)`` runs at the start of the timed call: it imports ``tilevm.runtime.cuda`` (the first
thing a launch on a GPU imports; timed as ``imports``) and wraps the functions that the launch calls, each
as one phase. A phase's time is exclusive: a wrapped call inside another counts for its own phase only, so
the phases add up to at most the wall time around the launch, and ``rest`` is what is left (binding and
describing the arguments, the launch itself). Only the main thread is timed: the background work (LLVM's
worker starting, ptxas telling its version) counts where the main thread waits for it (``LLVM O3 + PTX``,
``ptxas``). The modules that a phase imports lazily (the code generator and llvmlite in ``LLVM IR``) count
in that phase; ``imports_in(stderr)`` totals every import of the timed call from ``python -X importtime``'s
report, which the tables show beside the phases.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib
import shutil
import threading
import time
from collections.abc import Callable

#: (name in the tables, key) of each phase, in the order a first launch meets them
PHASES = (
    ("import tilevm.runtime.cuda", "imports"),
    ("device queries", "device"),
    ("disk lookup", "lookup"),
    ("LLVM worker + ptxas version started", "starts"),
    ("front end + Tile passes", "front_end"),
    ("lowering", "lowering"),
    ("LLVM IR", "llvm_ir"),
    ("LLVM O3 + PTX", "llvm"),
    ("ptxas", "ptxas"),
    ("keys + disk writes", "disk"),
    ("module load", "load"),
    ("rest", "rest"),
)
#: what the measuring process writes to stderr where the timed call starts and ends (``imports_in``)
START_MARK, END_MARK = "tilevm-phases-start", "tilevm-phases-end"


class PhaseClock:
    """Seconds per phase (``PHASES``' keys), each call counted once, in the innermost wrapped function."""

    def __init__(self) -> None:
        self.seconds = {key: 0.0 for _, key in PHASES}
        self._nested: list[float] = []  # per open timed call: the time its nested timed calls took
        self._main = threading.main_thread()

    def timed(self, key: str, function: Callable) -> Callable:
        """``function`` with its calls from the main thread counted as phase ``key``."""

        @functools.wraps(function)
        def timed_call(*args: object, **kwargs: object) -> object:
            if threading.current_thread() is not self._main:
                return function(*args, **kwargs)
            start = time.perf_counter()
            self._nested.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[key] += elapsed - self._nested.pop()
                if self._nested:
                    self._nested[-1] += elapsed

        return timed_call

    def wrap(self, owner: object, attribute: str, key: str) -> None:
        setattr(owner, attribute, self.timed(key, getattr(owner, attribute)))

    def result(self, total: float) -> dict[str, float]:
        """The phases' seconds, with ``rest`` = ``total`` (the wall time around the call) minus the others."""
        return {**self.seconds, "rest": total - sum(self.seconds.values())}


def instrument(clock: PhaseClock, stand_in: dict | None = None) -> None:
    """Import the CUDA runtime (timed) and wrap the functions of a first launch (see the module docstring).
    ``stand_in``: on a machine without a GPU, the ``DeviceProperties`` fields of the device to answer for
    every device index."""
    start = time.perf_counter()
    import tilevm.runtime.cuda as cuda
    from tilevm.codegen import emit

    clock.seconds["imports"] += time.perf_counter() - start
    import tilevm.codegen as codegen
    from tilevm.runtime import jit, launcher_ptx
    from tilevm.runtime.cuda import module, ptxas

    if stand_in is not None:
        device = cuda.DeviceProperties(**stand_in)
        cuda.properties = module.properties = lambda index: device
    for owner, attribute, key in (
        (cuda, "properties", "device"),
        (jit.Kernel, "from_disk", "lookup"),
        (emit, "start_worker", "starts"),
        (ptxas, "ask_version_in_background", "starts"),
        (jit.Kernel, "front_end", "front_end"),
        (jit.Specialization, "thread_program", "lowering"),
        (jit, "compile_ptx", "llvm_ir"),
        (codegen, "generate_llvm_ir", "llvm_ir"),
        (emit, "emit_ptx", "llvm"),
        (ptxas, "ptxas_version", "ptxas"),
        (ptxas, "assemble", "ptxas"),
        (launcher_ptx, "print_program", "disk"),
        (launcher_ptx, "kernel_key", "disk"),
        (cuda.DiskCache, "load_kernel", "disk"),
        (cuda.DiskCache, "store_kernel", "disk"),
        (jit, "manifest", "disk"),
        (jit, "store_specialization", "disk"),
        (cuda, "CudaLauncher", "load"),
    ):
        clock.wrap(owner, attribute, key)


def imports_in(stderr: str) -> float:
    """The seconds spent importing between ``START_MARK`` and ``END_MARK`` in a ``-X importtime`` report:
    the sum of the cumulative times of the imports that no other import made."""
    total, timing = 0.0, False
    for line in stderr.splitlines():
        if line in (START_MARK, END_MARK):
            timing = line == START_MARK
        elif timing and line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):  # nested imports are indented
                total += int(cumulative) * 1e-6
    return total


def has_bytecode(module: str) -> bool:
    """Whether ``module`` (``"llvmlite.ir.instructions"``), as this process would import it, has its
    bytecode written: a first launch imports llvmlite, whose bytecode ``pip install --no-compile`` leaves
    out, from source otherwise."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return False
    return pathlib.Path(importlib.util.cache_from_source(spec.origin)).exists()


def precompile(package: pathlib.Path) -> None:
    """Write the bytecode of every module of ``package``, as ``pip install`` does."""
    import compileall

    compileall.compile_dir(str(package), quiet=1)


def copy_without_bytecode(package: pathlib.Path, destination: pathlib.Path) -> pathlib.Path:
    """A copy of ``package`` in ``destination`` with no ``__pycache__``: a checkout that no process has
    imported yet (run it with ``PYTHONDONTWRITEBYTECODE=1`` so that every process compiles the sources)."""
    copy = destination / package.name
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def child_environment(paths: list[pathlib.Path], cache: str, bytecode: bool) -> dict[str, str]:
    """The environment of a measuring process: ``paths`` first on ``PYTHONPATH``, the disk cache in
    ``cache``; with ``bytecode`` False, no bytecode written (each process compiles what it imports)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    search = [*map(str, paths), environment.get("PYTHONPATH")]
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, search))
    environment["TILEVM_CACHE_DIR"] = cache
    if not bytecode:
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return environment


def table_header(first: str, extra: list[str]) -> str:
    names = [name for name, _ in PHASES]
    return f"| {first} | {' | '.join([*names, *extra])} |\n| --- |{' ---: |' * (len(names) + len(extra))}"


def phase_cells(phases: dict[str, float]) -> list[str]:
    return [f"{phases[key] * 1e3:.1f}" for _, key in PHASES]
