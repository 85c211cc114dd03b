"""Specializations on disk, found without running the front end: the first launch of a kernel in a new
process loads its code straight from the disk cache.

The disk cache of ``launcher_ptx`` is keyed by the Thread IR's text, which only the front end and the
passes can produce (about 100 ms for the matmul example). So each specialization launched on a GPU is also
stored under a key computed from what the front end reads (``specialization_key``): the kernel's source
text and place, its block size, the descriptions of its arguments (``describe_arguments``: dtypes, ranks,
unit strides, divisibility, constexpr values by their bits), the options, the target and device, and the
versions of tilevm (its sources' sizes and modification times), llvmlite and the driver. The entry holds
the PTX and cubin, and beside it a manifest of the globals and closure variables the compilation read, each
by a fingerprint that another process can compute: a value of a plain type by its value (floats by their
bits), a module by its name, a ``tv.func`` or a Python function by its place and the hash of its source, a
class or builtin by its place, a dtype by its text. A new process uses the entry only when every name in the
manifest still has that fingerprint, and records what it read in a ``Captures``, so that a later change of
one of them compiles again, as it would after a compile. A compilation that read something with no
fingerprint (an object, a list, a closure variable of a helper) is not stored: its specializations compile
in every process, then take their code from the Thread-IR-keyed cache.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import pathlib
import sys
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import tilevm
from tilevm.dtypes import DType
from tilevm.lang.captures import ABSENT, VALUE_TYPES, Captures
from tilevm.lang.functions import DeviceFunction
from tilevm.lang.parameters import ConstexprParameter, Parameter, constexpr_key
from tilevm.lang.source import closure_cells
from tilevm.passes import CompileOptions

if TYPE_CHECKING:
    from tilevm.codegen import CompiledPtx

__all__ = ["Manifest", "load_specialization", "manifest", "specialization_key", "store_specialization"]

#: the manifest's name for the kernel's own module: its globals are found through the kernel function, also
#: when its file runs as a script or through ``runpy`` (not in ``sys.modules`` under its name)
KERNEL_MODULE = "<kernel>"

#: a manifest: (where, name, fingerprint) for every global and closure variable a compilation read
Manifest = list[tuple[str, str, object]]
#: the manifest's entry is stored under the specialization's key with this suffix
MANIFEST_SUFFIX = "-reads"
PACKAGE = pathlib.Path(tilevm.__file__).parent


def specialization_key(
    function: Callable,
    block: tuple[int, int | None],
    described: tuple[Parameter, ...],
    options: CompileOptions,
    target: str,
    capability: tuple[int, int],
    driver_version: int,
) -> str:
    """The disk key of a specialization, from what the front end reads (see the module docstring); ``block``
    is the kernel's threads a block and its register cap."""
    from tilevm.codegen import llvmlite_version
    from tilevm.runtime.cuda import cache_key

    code = function.__code__
    arguments = [
        ("constexpr", parameter.name, parameter.key)
        if isinstance(parameter, ConstexprParameter)
        else parameter
        for parameter in described
    ]
    return cache_key(
        "tilevm specialization",
        f"{function.__module__}.{function.__qualname__} {code.co_filename}:{code.co_firstlineno}",
        _source_text(function) or "",
        repr(block),
        repr(arguments),
        ",".join(sorted(options.disabled_passes)),
        target,
        f"{capability[0]}.{capability[1]} {driver_version}",
        tilevm.__version__,
        llvmlite_version(),
        package_fingerprint(),
    )


def manifest(function: Callable, captures: Captures) -> Manifest | None:
    """What ``captures`` read, by fingerprint; None when something has none (see the module docstring)."""
    reads: Manifest = []
    for namespace, name, value in captures.globals.values():
        module = KERNEL_MODULE if namespace is function.__globals__ else namespace.get("__name__")
        if module != KERNEL_MODULE and (
            not isinstance(module, str) or getattr(sys.modules.get(module), "__dict__", None) is not namespace
        ):
            return None
        reads.append((module, name, fingerprint(value)))
    cells = {id(cell): name for name, cell in closure_cells(function).items()}
    for cell, value in captures.cells.values():
        if id(cell) not in cells:
            return None  # a helper's closure variable: another process cannot find it
        reads.append(("", cells[id(cell)], fingerprint(value)))
    return None if any(read[2] is None for read in reads) else reads


def store_specialization(key: str, reads: Manifest, compiled: CompiledPtx, cubin: bytes | None) -> None:
    """Store a specialization's code and, after it, its manifest (a reader needs both)."""
    from tilevm.runtime.cuda import DiskCache

    cache = DiskCache()
    cache.store_kernel(key, compiled, cubin)
    cache.put(key + MANIFEST_SUFFIX, json.dumps(reads).encode())


def load_specialization(key: str, function: Callable) -> tuple[CompiledPtx, bytes | None, Captures] | None:
    """The code stored under ``key`` and a ``Captures`` of the names its compilation read, if every one of
    them still has the fingerprint it had; else None."""
    from tilevm.runtime.cuda import DiskCache

    cache = DiskCache()
    stored = cache.get(key + MANIFEST_SUFFIX)
    if stored is None:
        return None
    captures = Captures()
    cells = closure_cells(function)
    for module, name, expected in json.loads(stored):
        if module:
            namespace = (
                function.__globals__
                if module == KERNEL_MODULE
                else getattr(sys.modules.get(module), "__dict__", None)
            )
            if namespace is None or fingerprint(namespace.get(name, ABSENT)) != expected:
                return None
            captures.read_global(namespace, name)
        elif name not in cells or fingerprint(captures.read_cell(cells[name])) != expected:
            return None
    found = cache.load_kernel(key)
    return None if found is None else (*found, captures)


def fingerprint(value: object) -> object:
    """What identifies ``value`` across processes, as JSON data; None when nothing does."""
    if value is ABSENT:
        return ["absent"]
    if isinstance(value, (*VALUE_TYPES, float, complex, tuple)) and _plain(value):
        return ["value", repr(constexpr_key(value, ""))]
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, DType):
        return ["dtype", repr(value)]
    if isinstance(value, DeviceFunction):
        value = value.function
    if isinstance(value, (types.FunctionType, type, types.BuiltinFunctionType)):
        place = f"{getattr(value, '__module__', None)}.{value.__qualname__}"
        if not isinstance(value, types.FunctionType):
            return ["object", place]
        source = _source_text(value)
        return None if source is None else ["function", place, hashlib.sha256(source.encode()).hexdigest()]
    return None


def _plain(value: object) -> bool:
    """Whether ``value`` is made of ints, bools, strings, bytes, None, floats and tuples of them only."""
    if isinstance(value, tuple):
        return all(_plain(item) for item in value)
    return type(value) in (*VALUE_TYPES, float, complex)


def _source_text(function: Callable) -> str | None:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return None


@functools.cache
def package_fingerprint() -> str:
    """tilevm's sources by path, size and modification time (as Python's own bytecode cache checks them):
    cheap to read at a process's first launch, and changed by any edit of the front end, the passes or
    the code generator."""
    digest = hashlib.sha256()
    for relative, status in sorted(_sources(str(PACKAGE), "")):
        digest.update(f"{relative} {status.st_size} {status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _sources(directory: str, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every ``.py`` file under ``directory``, by its path relative to it (``/``-separated, after
    ``prefix``), with its status; through ``os.scandir``, several times faster than ``Path.rglob``."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _sources(entry.path, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".py"):
                yield f"{prefix}{entry.name}", entry.stat()
