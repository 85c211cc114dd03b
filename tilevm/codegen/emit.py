"""LLVM IR text to PTX, in a worker process: a crash of LLVM is a ``CodegenError``, never the user's process
dying.

LLVM aborts the process it runs in on an instruction the target cannot select (``targets.FEATURES`` and
``FunctionContext.require`` keep code generation from asking for one) and on any failed internal assertion
(llvmlite's LLVM is built with them), which no table can foresee. So ``tilevm.codegen.emit_worker`` runs
LLVM in a process of its own, started on the first kernel (``start_worker``, which ``compile_to_ptx`` calls
before building the module, so that the start overlaps that work) and kept for the next ones; when it dies,
the kernel it was compiling fails with LLVM's last message and the next kernel starts a new one.

The guards of ``tilevm.codegen.guards`` then check the module's declarations (every ``llvm.*`` function is a
real intrinsic) and the PTX (no external function, the requested ``.version`` and ``.target``).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading

from tilevm.codegen.guards import check_declarations, check_ptx
from tilevm.codegen.targets import CodegenError, Target

__all__ = ["emit_ptx", "start_worker", "worker_command"]

#: run as a script, by path: importing it as part of tilevm would import tilevm
_WORKER_SCRIPT = pathlib.Path(__file__).with_name("emit_worker.py")


class _Worker:
    """The LLVM process; one request at a time (a lock serialises threads)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._owner = 0  # the process that started the worker: a forked child starts its own
        self._errors = None
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def start(self) -> None:
        with self._lock:
            self._start()

    def stop(self) -> None:
        """End the worker (it exits when its input closes)."""
        with self._lock:
            if self._process is not None and self._owner == os.getpid():
                self._process.stdin.close()
                self._process.wait()
                self._process.stdout.close()
                self._errors.close()
            self._process = None

    def _start(self) -> None:
        running = self._process is not None and self._process.poll() is None
        if running and self._owner == os.getpid():
            return
        # LLVM's messages (its last words when it aborts) go to a file: a pipe that nobody reads could fill
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115  (the worker writes it as long as it lives)
        self._process = subprocess.Popen(
            worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
        )
        self._owner = os.getpid()

    def compile(self, llvm_ir: str, target: Target, kernel: str) -> tuple[str, list[tuple[str, bool]]]:
        with self._lock:
            self._start()
            process = self._process
            body = llvm_ir.encode()
            request = {"cpu": target.name, "features": target.llvm_features, "size": len(body)}
            try:
                process.stdin.write(json.dumps(request).encode() + b"\n" + body)
                process.stdin.flush()
                header = process.stdout.readline()
            except BrokenPipeError:
                header = b""
            if not header:
                raise CodegenError(f"kernel '{kernel}': LLVM crashed compiling it: {self._last_words()}")
            answer = json.loads(header)
            if "error" in answer:
                raise CodegenError(f"kernel '{kernel}': LLVM refused the generated IR: {answer['error']}")
            ptx = process.stdout.read(answer["size"]).decode()
            return ptx, [tuple(item) for item in answer["declarations"]]

    def _last_words(self) -> str:
        """What the dead worker wrote last (LLVM's error or assertion), and its exit status; its pipes and
        file closed."""
        process, errors = self._process, self._errors
        status = process.wait()
        self._process = None
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(BrokenPipeError):  # stdin may hold bytes the dead worker never read
                pipe.close()
        errors.seek(0)
        lines = [line for line in errors.read().decode(errors="replace").splitlines() if line.strip()]
        errors.close()
        messages = [line for line in lines if "LLVM ERROR" in line or "Assertion" in line] or lines[-1:]
        return f"{' '.join(messages) or 'no message'} (exit status {status})"


_WORKER = _Worker()


def worker_command() -> list[str]:
    """The worker's command line: an isolated Python (``-I``: no ``PYTHON*`` variables, no user site, not
    the script's directory) given the directory that this process imports llvmlite from, which the worker
    puts first on its path: ``-I`` drops ``PYTHONPATH``, through which this process may have found another
    llvmlite than the interpreter's own (the LLVM that compiles must be the one the disk cache keys name)."""
    command = [sys.executable, "-I", str(_WORKER_SCRIPT)]
    spec = importlib.util.find_spec("llvmlite")  # the imported module's spec once imported; imports nothing
    if spec is not None and spec.submodule_search_locations:
        command.append(str(pathlib.Path(spec.submodule_search_locations[0]).parent))
    return command


def start_worker() -> None:
    """Start the LLVM process now if it is not running (it takes tens of milliseconds to start)."""
    _WORKER.start()


def emit_ptx(llvm_ir: str, target: Target, kernel: str) -> str:
    """The PTX of the module ``llvm_ir`` (one kernel, named ``kernel`` in errors), optimised at O3."""
    ptx, declarations = _WORKER.compile(llvm_ir, target, kernel)
    check_declarations(declarations, kernel)
    check_ptx(ptx, target, kernel)
    return ptx
