"""The launch of a loaded kernel: the hot path from a launch's values to one ``cuLaunchKernel``.

``CudaLauncher`` does all the work it can once, when it is made: it loads the kernel (``module.load``), builds
its ``ParameterBuffer`` and binds the driver function and every constant argument. A launch then checks the
grid with three comparisons, writes the values into the prebuilt buffer and calls the driver, under a lock
(threads share the buffer; the driver copies it before ``cuLaunchKernel`` returns): no argument structure
built, no dictionary, no driver query, and no synchronising call, so it can be captured in a CUDA graph.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

from tilevm.codegen import CompiledPtx
from tilevm.errors import LaunchError
from tilevm.runtime.cuda.driver import bindings, check, current_context, raise_error
from tilevm.runtime.cuda.module import LoadedKernel, load
from tilevm.runtime.cuda.parameters import ParameterBuffer

__all__ = ["GRID_X_LIMIT", "GRID_YZ_LIMIT", "WRONG_CONTEXT_RESULTS", "CudaLauncher", "check_grid"]

#: grid extents must be below these (CUDA's limits on every chip tilevm targets)
GRID_X_LIMIT = 2**31
GRID_YZ_LIMIT = 2**16

#: the names of what cuLaunchKernel returns when this thread's current context is not the kernel's device's
#: (no context yet, or torch's current device is another GPU): the launch is retried with the right context
WRONG_CONTEXT_RESULTS = ("CUDA_ERROR_INVALID_CONTEXT", "CUDA_ERROR_INVALID_HANDLE")


def check_grid(grid: tuple[int, int, int], kernel: str) -> bool:
    """Whether ``grid`` has blocks to run (False for an empty grid: an extent of 0 launches nothing).

    Raises ``LaunchError`` for a negative extent or one at or beyond CUDA's limits.
    """
    for axis, extent, limit in zip("xyz", grid, (GRID_X_LIMIT, GRID_YZ_LIMIT, GRID_YZ_LIMIT)):
        if not 0 <= extent < limit:
            raise LaunchError(
                f"kernel '{kernel}': grid extent {axis}={extent} is out of range; "
                f"CUDA allows 0 <= {axis} < {limit}"
            )
    return all(grid)


class CudaLauncher:
    """Launches one ``CompiledPtx`` on device ``device_index``.

    ``names`` (optional) names the parameters in argument errors; ``cubin`` is the kernel's cubin for this
    device when the caller has one (``module.cubin_for``, or the disk cache), else the PTX is loaded.
    ``positions`` and ``width`` (optional): the launch's values are ``width`` values among which the
    parameters' are at ``positions`` (``ParameterBuffer``).
    """

    def __init__(
        self,
        compiled: CompiledPtx,
        device_index: int,
        cubin: bytes | None = None,
        names: Sequence[str] | None = None,
        positions: Sequence[int] | None = None,
        width: int | None = None,
    ) -> None:
        self.kernel: LoadedKernel = load(compiled, device_index, cubin)
        self.name = compiled.name
        self.device_index = device_index
        self._kinds, self._names = compiled.parameters, names
        self.parameters = ParameterBuffer(compiled.parameters, compiled.name, names, positions, width)
        driver = bindings()
        self._launch_kernel = driver.cuLaunchKernel
        self._wrong_context = tuple(getattr(driver.CUresult, name) for name in WRONG_CONTEXT_RESULTS)
        self._function = self.kernel.function
        self._num_threads = compiled.num_threads
        self._shared_bytes = compiled.shared_bytes
        self._use(self.parameters)

    def rebound(self, positions: Sequence[int], width: int, constants: Sequence[object]) -> CudaLauncher:
        """This kernel, loaded as it is, with its own ``ParameterBuffer(..., positions, width, constants)``:
        its launches take ``width`` values, the parameters at other positions are the ``constants`` (a
        partial kernel's fixed arguments, written once)."""
        launcher = copy.copy(self)
        launcher.parameters = ParameterBuffer(
            self._kinds, self.name, self._names, positions, width, constants
        )
        launcher._use(launcher.parameters)
        return launcher

    def _use(self, parameters: ParameterBuffer) -> None:
        """Launch with ``parameters`` (and a lock of its own: threads share the buffer)."""
        self._parameters_address = parameters.address
        self._fill = parameters.fill
        self._lock = threading.Lock()

    def launch(self, grid: tuple[int, int, int], values: Sequence[object], stream: int) -> None:
        """Launch on ``grid`` blocks with the kernel's flat parameter ``values`` (or the ``width`` values
        that hold them) on ``stream`` (a ``CUstream`` handle as an int, such as
        ``torch.cuda.current_stream().cuda_stream``), asynchronously. The extents must be ints (the
        caller's ``checked_grid``); the limits are checked here."""
        x, y, z = grid
        if not (0 < x < GRID_X_LIMIT and 0 < y < GRID_YZ_LIMIT and 0 < z < GRID_YZ_LIMIT) and not check_grid(
            grid, self.name
        ):
            return
        # the lock keeps another thread from refilling the shared buffer before the driver has copied it
        with self._lock:
            self._fill(values)
            result = self._submit(x, y, z, stream)
            if result:
                self._retry(result, x, y, z, stream)

    def blocks_per_multiprocessor(self) -> int:
        """How many blocks of this kernel one multiprocessor runs at once, as its registers, shared memory
        and threads allow (``cuOccupancyMaxActiveBlocksPerMultiprocessor``)."""
        driver = bindings()
        with current_context(self.device_index):
            return check(
                driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
                    self._function, self._num_threads, self._shared_bytes
                ),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor",
                self.name,
            )

    def _submit(self, x: int, y: int, z: int, stream: int) -> Any:
        """One cuLaunchKernel of the filled parameters; its CUresult."""
        return self._launch_kernel(
            self._function,
            x,
            y,
            z,
            self._num_threads,
            1,
            1,
            self._shared_bytes,
            stream,
            self._parameters_address,
            0,
        )[0]

    def _retry(self, result: Any, x: int, y: int, z: int, stream: int) -> None:
        """Launch again with this device's context current when the first try failed for want of it."""
        if result not in self._wrong_context:
            raise_error(result, "cuLaunchKernel", self.name)
        with current_context(self.device_index):
            result = self._submit(x, y, z, stream)
        if result:
            raise_error(result, "cuLaunchKernel", self.name)
