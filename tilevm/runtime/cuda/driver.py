"""The CUDA driver through cuda-python's ``cuda.bindings.driver``, imported and initialised on first use.

``import tilevm`` never imports it: the first kernel that needs the GPU calls ``bindings()``, which imports
the bindings and calls ``cuInit`` once. Every driver call's result goes through ``check``, which turns
cuda-python's ``(CUresult, value...)`` tuples into the values or a ``CudaError`` naming the call, the kernel
and the error.

Kernels run in each device's primary context, the one the CUDA runtime (and so torch) uses: a module loaded
there is usable on torch's streams, and tensors' device pointers are valid in it. ``current_context`` makes it
current for a block and restores the caller's context afterwards, so torch's notion of the current device is
left alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from tilevm.errors import CudaError

__all__ = ["bindings", "check", "current_context", "describe_error", "primary_context", "raise_error"]

_lock = threading.Lock()
_bindings: ModuleType | None = None
_primary_contexts: dict[int, Any] = {}


def bindings() -> ModuleType:
    """``cuda.bindings.driver``, imported and initialised (``cuInit``) on the first call.

    Raises ``CudaError`` saying what is missing when cuda-python is not installed or no CUDA driver loads.
    """
    global _bindings
    if _bindings is not None:
        return _bindings
    with _lock:
        if _bindings is None:
            _bindings = _initialise()
    return _bindings


def _initialise() -> ModuleType:
    try:
        from cuda.bindings import driver
    except ImportError as error:
        raise CudaError(
            f"cannot import cuda-python's driver bindings (cuda.bindings.driver): {error}; "
            "install cuda-python to run kernels on a GPU"
        ) from error
    try:
        (result,) = driver.cuInit(0)
    except Exception as error:  # cuda-python raises (not returns) when it finds no driver library at all
        raise CudaError(
            f"no usable CUDA driver: cuInit failed with {type(error).__name__}: {error} "
            "(running kernels on a GPU needs an NVIDIA driver; CPU tensors run on the SIMT interpreter)"
        ) from error
    if result:
        raise CudaError(f"no usable CUDA driver: cuInit failed with {describe_error(driver, result)}")
    return driver


def describe_error(driver: ModuleType, result: Any) -> str:
    """``NAME (explanation)`` of a ``CUresult``, from ``cuGetErrorName`` and ``cuGetErrorString``."""
    name_result, name = driver.cuGetErrorName(result)
    text_result, text = driver.cuGetErrorString(result)
    name = name.decode() if not name_result and name else f"CUresult {int(result)}"
    return f"{name} ({text.decode()})" if not text_result and text else name


def raise_error(result: Any, call: str, kernel: str | None = None) -> None:
    """Raise the ``CudaError`` of a failed ``call`` (for paths that check ``result`` themselves)."""
    where = f" for kernel '{kernel}'" if kernel else ""
    raise CudaError(f"{call} failed{where}: {describe_error(bindings(), result)}")


def check(result: tuple, call: str, kernel: str | None = None) -> Any:
    """The values of a driver call's ``(CUresult, value...)`` result: None, the one value, or a tuple of them.

    ``call`` names the driver function and ``kernel`` the kernel it was for, both shown in the ``CudaError``
    that a failure raises.
    """
    if result[0]:
        raise_error(result[0], call, kernel)
    if len(result) == 1:
        return None
    return result[1] if len(result) == 2 else result[1:]


def primary_context(device_index: int) -> Any:
    """The primary context of device ``device_index`` (retained once, for the life of the process)."""
    context = _primary_contexts.get(device_index)
    if context is None:
        driver = bindings()  # before taking the lock, which bindings() takes too
        with _lock:
            context = _primary_contexts.get(device_index)
            if context is None:
                device = check(driver.cuDeviceGet(device_index), f"cuDeviceGet({device_index})")
                context = check(driver.cuDevicePrimaryCtxRetain(device), "cuDevicePrimaryCtxRetain")
                _primary_contexts[device_index] = context
    return context


@contextlib.contextmanager
def current_context(device_index: int) -> Iterator[Any]:
    """Make device ``device_index``'s primary context current in this thread for the block, then restore the
    caller's (``cuCtxPushCurrent`` / ``cuCtxPopCurrent``)."""
    driver = bindings()
    context = primary_context(device_index)
    check(driver.cuCtxPushCurrent(context), "cuCtxPushCurrent")
    try:
        yield context
    finally:
        check(driver.cuCtxPopCurrent(), "cuCtxPopCurrent")
