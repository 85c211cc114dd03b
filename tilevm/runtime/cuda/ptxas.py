"""``ptxas``, NVIDIA's PTX assembler: found, asked its version, and run to turn PTX into a cubin.

Where to find it, first match wins: the ``TILEVM_PTXAS`` environment variable (a path), the
``nvidia-cuda-nvcc`` wheel's binary in site-packages (``nvidia/cu13/bin/ptxas`` for CUDA 13,
``nvidia/cuda_nvcc/bin/ptxas`` for CUDA 12), then ``PATH``. A cubin is optional: without ptxas the driver
compiles the PTX itself when it loads it. CI uses ``check_assembles`` to prove every test kernel's PTX is
valid for sm_80 and sm_90.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from tilevm.errors import TilevmError

__all__ = [
    "ELF_MAGIC",
    "PTXAS_VARIABLE",
    "PtxasError",
    "ask_version_in_background",
    "assemble",
    "check_assembles",
    "entry_name",
    "find_ptxas",
    "ptx_version",
    "ptxas_version",
]

#: the environment variable that names the ptxas binary to use
PTXAS_VARIABLE = "TILEVM_PTXAS"
#: where the nvidia-cuda-nvcc wheels put ptxas, under site-packages' ``nvidia`` namespace package
WHEEL_BINARIES = ("cu13/bin/ptxas", "cuda_nvcc/bin/ptxas")
#: every cubin is an ELF file
ELF_MAGIC = b"\x7fELF"

_ENTRY = re.compile(r"\.entry\s+([A-Za-z_$%][\w$]*)")
_RELEASE = re.compile(r"release (\d+)\.(\d+)")
_VERSION = re.compile(r"^\s*\.version\s+(\d+)\.(\d)\b", re.MULTILINE)


class PtxasError(TilevmError):
    """ptxas is missing, or rejected a kernel's PTX (the message carries ptxas' own report)."""


def entry_name(ptx: str) -> str:
    """The name of the first ``.entry`` in ``ptx``, or ``"<no entry>"``."""
    match = _ENTRY.search(ptx)
    return match.group(1) if match else "<no entry>"


def ptx_version(ptx: str) -> int:
    """The PTX ISA version of ``ptx`` (its ``.version``), times ten: 85 for ``.version 8.5``."""
    match = _VERSION.search(ptx)
    if match is None:
        raise PtxasError(f"kernel '{entry_name(ptx)}': the PTX has no .version directive")
    return int(match.group(1)) * 10 + int(match.group(2))


def _wheel_ptxas() -> str | None:
    spec = importlib.util.find_spec("nvidia")
    if spec is None or spec.submodule_search_locations is None:
        return None
    for root in spec.submodule_search_locations:
        for relative in WHEEL_BINARIES:
            candidate = Path(root, relative)
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def find_ptxas() -> str | None:
    """The path of the ptxas to use, or None when there is none. A ``TILEVM_PTXAS`` that names no executable
    file is an error, not a reason to look elsewhere: the user asked for that binary."""
    configured = os.environ.get(PTXAS_VARIABLE)
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise PtxasError(f"{PTXAS_VARIABLE}={configured!r} is not an executable file")
        return configured
    return _wheel_ptxas() or shutil.which("ptxas")


def _require_ptxas() -> str:
    path = find_ptxas()
    if path is None:
        raise PtxasError(
            f"ptxas not found: install the nvidia-cuda-nvcc wheel, put ptxas on PATH, or set {PTXAS_VARIABLE}"
        )
    return path


#: the release of each ptxas binary asked so far, by path; the lock makes a second asker wait for the first
_versions: dict[str, tuple[int, int]] = {}
_versions_lock = threading.Lock()


def _version_of(path: str) -> tuple[int, int]:
    with _versions_lock:
        if path not in _versions:
            completed = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
            match = _RELEASE.search(completed.stdout)
            if completed.returncode or match is None:
                output = f"{completed.stdout}{completed.stderr}".strip()
                raise PtxasError(f"cannot read the version of {path}: {output}")
            _versions[path] = int(match.group(1)), int(match.group(2))
        return _versions[path]


def ptxas_version() -> tuple[int, int] | None:
    """The CUDA release of the ptxas in use, as ``(major, minor)`` (``(13, 0)``), or None without ptxas.

    A cubin loads only on a driver at least as new as the ptxas that made it.
    """
    path = find_ptxas()
    return None if path is None else _version_of(path)


def ask_version_in_background() -> None:
    """Start asking ptxas its version (a process of its own, tens of milliseconds) in a thread, so that the
    answer is ready when the first cubin is made: a kernel's first compile calls this as it starts.
    Failures are left for ``ptxas_version`` to raise where it is called."""

    def ask() -> None:
        with contextlib.suppress(PtxasError):
            ptxas_version()

    threading.Thread(target=ask, name="tilevm-ptxas-version", daemon=True).start()


def assemble(ptx: str, target: str) -> bytes:
    """The cubin of ``ptx`` for ``target`` (``"sm_90"``), assembled by ptxas in a temporary directory.

    Raises ``PtxasError`` with ptxas' messages and the kernel's name when ptxas rejects the PTX.
    """
    path = _require_ptxas()
    with tempfile.TemporaryDirectory(prefix="tilevm-ptxas-") as directory:
        source = Path(directory, "kernel.ptx")
        output = Path(directory, "kernel.cubin")
        source.write_text(ptx)
        completed = subprocess.run(
            [path, f"-arch={target}", "-o", str(output), str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode:
            report = (completed.stderr or completed.stdout).strip()
            raise PtxasError(f"ptxas rejected kernel '{entry_name(ptx)}' for {target}:\n{report}")
        return output.read_bytes()


def check_assembles(ptx: str, target: str) -> bytes:
    """Assemble ``ptx`` for ``target`` and check ptxas made an ELF file; returns the cubin.

    For CI: every kernel's PTX must assemble for every target tilevm supports.
    """
    cubin = assemble(ptx, target)
    if not cubin.startswith(ELF_MAGIC):
        raise PtxasError(f"ptxas made no ELF file for kernel '{entry_name(ptx)}' ({target})")
    return cubin
