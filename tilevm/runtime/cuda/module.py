"""A compiled kernel loaded on one device: its module and function handle, with its shared memory limit set.

``load(compiled, device_index, cubin)`` loads a ``CompiledPtx`` (from ``tilevm.codegen``) into the device's
primary context, once per (kernel, device): from the cubin when one is given, otherwise from the PTX, which
the driver compiles (a failure then carries the driver's JIT log). What the block needs (threads, shared
memory) is checked against the device before anything is loaded. ``cubin_for`` assembles the cubin to pass
when ptxas is at hand and the driver can load what it makes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from tilevm.codegen import CompiledPtx
from tilevm.codegen.targets import TARGETS
from tilevm.errors import CudaError
from tilevm.runtime.cuda import ptxas
from tilevm.runtime.cuda.device import DeviceProperties, loads_on, max_ptx_version, properties, runs_cubin
from tilevm.runtime.cuda.driver import bindings, check, current_context, describe_error

__all__ = [
    "DEFAULT_SHARED_BYTES",
    "JIT_LOG_BYTES",
    "MAX_THREADS_PER_BLOCK",
    "LoadedKernel",
    "check_fits",
    "cubin_for",
    "load",
    "wants_cubin",
]

#: the dynamic shared memory a block gets without opting in through cuFuncSetAttribute
DEFAULT_SHARED_BYTES = 48 * 1024
#: CUDA's limit on the threads of one block, on every chip tilevm targets
MAX_THREADS_PER_BLOCK = 1024
#: room for the driver's JIT error log
JIT_LOG_BYTES = 16 * 1024

_loaded: dict[tuple[CompiledPtx, int], LoadedKernel] = {}
_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class LoadedKernel:
    """A ``CompiledPtx`` loaded on device ``device_index``: the module and the function to launch."""

    compiled: CompiledPtx
    device_index: int
    module: Any
    function: Any
    #: whether the module came from a cubin (else from PTX that the driver compiled)
    from_cubin: bool


def check_fits(compiled: CompiledPtx, device: DeviceProperties) -> None:
    """Raise ``CudaError`` when a block of ``compiled`` cannot run on ``device``: too many threads, more
    shared memory than the device lets a block opt in to, or a target whose PTX the device cannot load (newer
    than the device, or architecture-specific to another chip)."""
    name = compiled.name
    if not 0 < compiled.num_threads <= MAX_THREADS_PER_BLOCK:
        raise CudaError(
            f"kernel '{name}' needs {compiled.num_threads} threads a block; "
            f"CUDA allows 1 to {MAX_THREADS_PER_BLOCK}"
        )
    if compiled.shared_bytes > device.max_shared_bytes_optin:
        raise CudaError(
            f"kernel '{name}' needs {compiled.shared_bytes} bytes of shared memory a block; "
            f"device {device.index} ({device.name}) allows at most {device.max_shared_bytes_optin}"
        )
    target = TARGETS.get(compiled.target)
    if target is None:
        raise CudaError(f"kernel '{name}' was compiled for {compiled.target}, which tilevm cannot load")
    if not loads_on(target, device.capability):
        major, minor = device.capability
        raise CudaError(
            f"kernel '{name}' was compiled for {compiled.target}; device {device.index} ({device.name}) "
            f"has compute capability {major}.{minor}"
        )


def wants_cubin(
    target: str, ptx_version: int, capability: tuple[int, int], driver_version: int, ptxas_release: int | None
) -> bool:
    """Whether to load a cubin that ptxas of CUDA release ``ptxas_release`` (None: no ptxas) makes from PTX
    of ``ptx_version`` (times ten) for ``target``, on a chip of ``capability`` whose driver is of release
    ``driver_version`` (releases as ``cuDriverGetVersion`` writes them). Not when the chip does not run the
    target's machine code (a newer chip, which only PTX reaches), when ptxas belongs to a newer major
    release than the driver (a driver loads the machine code of its own major release, also from a newer
    minor one: CUDA's minor version compatibility), or when the PTX is newer than ptxas reads; the driver
    compiles the PTX then. A cubin that a driver still refuses is replaced by the PTX when it is loaded
    (``load``).
    """
    return (
        ptxas_release is not None
        and runs_cubin(target, capability)
        and ptxas_release // 1000 <= driver_version // 1000
        and ptx_version <= max_ptx_version(ptxas_release)
    )


def cubin_for(compiled: CompiledPtx, device_index: int) -> bytes | None:
    """The cubin of ``compiled`` for device ``device_index`` when ``wants_cubin`` says to use one, else
    None (load the PTX)."""
    device = properties(device_index)
    version = ptxas.ptxas_version()
    release = None if version is None else version[0] * 1000 + version[1] * 10
    ptx_version = ptxas.ptx_version(compiled.ptx)
    if not wants_cubin(compiled.target, ptx_version, device.capability, device.driver_version, release):
        return None
    return ptxas.assemble(compiled.ptx, compiled.target)


def load(compiled: CompiledPtx, device_index: int, cubin: bytes | None = None) -> LoadedKernel:
    """``compiled`` loaded on device ``device_index`` (from ``cubin`` when given), once per process."""
    key = (compiled, device_index)
    loaded = _loaded.get(key)
    if loaded is None:
        with _lock:
            loaded = _loaded.get(key)
            if loaded is None:
                loaded = _loaded[key] = _load(compiled, device_index, cubin)
    return loaded


def _load(compiled: CompiledPtx, device_index: int, cubin: bytes | None) -> LoadedKernel:
    device = properties(device_index)
    check_fits(compiled, device)
    driver = bindings()
    name = compiled.name
    with current_context(device_index):
        module, from_cubin = _load_module(driver, compiled, cubin)
        try:
            function = _prepare_function(driver, module, compiled)
        except CudaError:
            check(driver.cuModuleUnload(module), "cuModuleUnload", name)
            raise
    return LoadedKernel(compiled, device_index, module, function, from_cubin)


def _load_module(driver: Any, compiled: CompiledPtx, cubin: bytes | None) -> tuple[Any, bool]:
    """The module of ``cubin`` when there is one and the driver loads it, else of the PTX, which the driver
    compiles; and whether it came from the cubin."""
    refused = None
    if cubin is not None:
        result = driver.cuModuleLoadData(cubin)
        if not result[0]:
            return result[1], True
        refused = f"cuModuleLoadData refused the cubin: {describe_error(driver, result[0])}"
    return _load_ptx(driver, compiled, refused), False


def _prepare_function(driver: Any, module: Any, compiled: CompiledPtx) -> Any:
    """The kernel's function in ``module``, allowed the dynamic shared memory it needs."""
    name = compiled.name
    function = check(driver.cuModuleGetFunction(module, name.encode()), "cuModuleGetFunction", name)
    if compiled.shared_bytes > DEFAULT_SHARED_BYTES:
        attribute = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        check(
            driver.cuFuncSetAttribute(function, attribute, compiled.shared_bytes),
            "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)",
            name,
        )
    return function


def _load_ptx(driver: Any, compiled: CompiledPtx, refused: str | None = None) -> Any:
    """Load PTX with the JIT's error log captured, so a failure says why (and, after a cubin the driver
    ``refused``, why that failed too)."""
    # cuda-python passes a bytearray to the driver as its char* buffer, which the driver fills
    error_log = bytearray(JIT_LOG_BYTES)
    option = driver.CUjit_option
    options = [option.CU_JIT_ERROR_LOG_BUFFER, option.CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES]
    source = compiled.ptx.encode() + b"\0"
    result = driver.cuModuleLoadDataEx(source, len(options), options, [error_log, JIT_LOG_BYTES])
    if result[0]:
        log = error_log.split(b"\0", 1)[0].decode(errors="replace").strip() or "(empty)"
        earlier = f" (after {refused})" if refused else ""
        raise CudaError(
            f"cuModuleLoadDataEx failed for kernel '{compiled.name}'{earlier}: "
            f"{describe_error(driver, result[0])}\nJIT log:\n{log}"
        )
    return result[1]
