"""A compiled kernel loaded on one device: its module and function handle, with its shared memory limit set.

``load(compiled, device_index, cubin)`` loads a ``CompiledPtx`` (from ``tilevm.codegen``) into the device's
primary context, once per (kernel, device): from the cubin when one is given, otherwise from the PTX, which
the driver compiles (a failure then carries the driver's JIT log). What the block needs (threads, shared
memory) is checked against the device before anything is loaded. ``cubin_for`` assembles the cubin to pass
when ptxas is at hand and the driver can load what it makes.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any

from tilevm.codegen.targets import TARGETS
from tilevm.errors import CudaError
from tilevm.runtime.cuda import ptxas
from tilevm.runtime.cuda.device import DeviceProperties, properties, runs_cubin
from tilevm.runtime.cuda.driver import bindings, check, current_context, describe_error

__all__ = [
    "DEFAULT_SHARED_BYTES",
    "JIT_LOG_BYTES",
    "MAX_THREADS_PER_BLOCK",
    "LoadedKernel",
    "check_fits",
    "cubin_for",
    "load",
]

#: the dynamic shared memory a block gets without opting in through cuFuncSetAttribute
DEFAULT_SHARED_BYTES = 48 * 1024
#: CUDA's limit on the threads of one block, on every chip tilevm targets
MAX_THREADS_PER_BLOCK = 1024
#: room for the driver's JIT error and info logs
JIT_LOG_BYTES = 16 * 1024

_loaded: dict[tuple[Any, int], LoadedKernel] = {}
_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class LoadedKernel:
    """A ``CompiledPtx`` loaded on device ``device_index``: the module and the function to launch."""

    compiled: Any
    device_index: int
    module: Any
    function: Any
    #: whether the module came from a cubin (else from PTX that the driver compiled)
    from_cubin: bool


def check_fits(compiled: Any, device: DeviceProperties) -> None:
    """Raise ``CudaError`` when a block of ``compiled`` cannot run on ``device``: too many threads, more
    shared memory than the device lets a block opt in to, or a target newer than the device."""
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
    if divmod(target.capability, 10) > device.capability:
        major, minor = device.capability
        raise CudaError(
            f"kernel '{name}' was compiled for {compiled.target}; device {device.index} ({device.name}) "
            f"has compute capability {major}.{minor}"
        )


def cubin_for(compiled: Any, device_index: int) -> bytes | None:
    """The cubin of ``compiled`` for device ``device_index``, or None when the PTX must be loaded instead:
    no ptxas, a ptxas newer than the driver (the driver would refuse its cubin), or a device that does not
    run the target's machine code (a newer chip than the target, which only PTX reaches)."""
    device = properties(device_index)
    version = ptxas.ptxas_version()
    if version is None or not runs_cubin(compiled.target, device.capability):
        return None
    if version > divmod(device.driver_version // 10, 100):
        return None
    return ptxas.assemble(compiled.ptx, compiled.target)


def load(compiled: Any, device_index: int, cubin: bytes | None = None) -> LoadedKernel:
    """``compiled`` loaded on device ``device_index`` (from ``cubin`` when given), once per process."""
    key = (compiled, device_index)
    loaded = _loaded.get(key)
    if loaded is None:
        with _lock:
            loaded = _loaded.get(key)
            if loaded is None:
                loaded = _loaded[key] = _load(compiled, device_index, cubin)
    return loaded


def _load(compiled: Any, device_index: int, cubin: bytes | None) -> LoadedKernel:
    device = properties(device_index)
    check_fits(compiled, device)
    driver = bindings()
    name = compiled.name
    with current_context(device_index):
        if cubin is not None:
            module = check(driver.cuModuleLoadData(cubin), "cuModuleLoadData", name)
        else:
            module = _load_ptx(driver, compiled)
        function = check(driver.cuModuleGetFunction(module, name.encode()), "cuModuleGetFunction", name)
        if compiled.shared_bytes > DEFAULT_SHARED_BYTES:
            attribute = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            check(
                driver.cuFuncSetAttribute(function, attribute, compiled.shared_bytes),
                "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)",
                name,
            )
    return LoadedKernel(compiled, device_index, module, function, from_cubin=cubin is not None)


def _load_ptx(driver: Any, compiled: Any) -> Any:
    """Load PTX with the JIT's error log captured, so a failure says why."""
    error_log = ctypes.create_string_buffer(JIT_LOG_BYTES)
    option = driver.CUjit_option
    options = [
        option.CU_JIT_ERROR_LOG_BUFFER,
        option.CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
    ]
    values = [ctypes.addressof(error_log), JIT_LOG_BYTES]
    source = compiled.ptx.encode() + b"\0"
    result = driver.cuModuleLoadDataEx(source, len(options), options, values)
    if result[0]:
        log = error_log.value.decode(errors="replace").strip() or "(empty)"
        raise CudaError(
            f"cuModuleLoadDataEx failed for kernel '{compiled.name}': {describe_error(driver, result[0])}\n"
            f"JIT log:\n{log}"
        )
    return result[1]
