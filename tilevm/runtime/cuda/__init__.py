"""The CUDA runtime: a ``CompiledPtx`` from ``tilevm.codegen`` loaded on a device and launched on torch's
streams through cuda-python's driver API (``cuda.bindings.driver``).

- ``driver``: the bindings, imported and initialised (``cuInit``) on first use; ``check`` for every call's
  result; each device's primary context, the one torch uses.
- ``device``: what a device is (capability, shared memory, its driver's newest PTX ISA) and which target
  tilevm compiles for it.
- ``ptxas``: PTX to cubin, when ptxas is at hand.
- ``module``: a kernel loaded on a device, once per (kernel, device).
- ``parameters``: the prebuilt argument buffer of a kernel.
- ``launch``: ``CudaLauncher``, the hot path of a launch.
- ``cache``: the disk cache of compiled kernels.

How a launcher puts them together, once per specialization and device (``key`` from ``cache_key`` over
everything the code depends on, the driver's version included)::

    device = properties(index)
    cached = disk.load_kernel(key)
    if cached is None:
        target = TARGETS[device.target].with_ptx_limit(device.max_ptx_version)
        compiled = compile_to_ptx(program, target)
        cached = (compiled, cubin_for(compiled, index))
        disk.store_kernel(key, *cached)
    compiled, cubin = cached
    launcher = CudaLauncher(compiled, index, cubin=cubin)
    launcher.launch(grid, flat_values, torch.cuda.current_stream(index).cuda_stream)

Importing this package imports none of cuda-python: that happens when a kernel is first loaded.
"""

from tilevm.runtime.cuda.cache import DiskCache, cache_key
from tilevm.runtime.cuda.device import DeviceProperties, max_ptx_version, properties, target_for
from tilevm.runtime.cuda.launch import CudaLauncher
from tilevm.runtime.cuda.module import LoadedKernel, cubin_for, load
from tilevm.runtime.cuda.parameters import ParameterBuffer
from tilevm.runtime.cuda.ptxas import PtxasError, assemble, check_assembles, ptxas_version

__all__ = [
    "CudaLauncher",
    "DeviceProperties",
    "DiskCache",
    "LoadedKernel",
    "ParameterBuffer",
    "PtxasError",
    "assemble",
    "cache_key",
    "check_assembles",
    "cubin_for",
    "load",
    "max_ptx_version",
    "properties",
    "ptxas_version",
    "target_for",
]
