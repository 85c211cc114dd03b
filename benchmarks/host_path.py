"""The eager host path of the quantized GEMM: µs per call of ``quantized_matmul``, ``QuantizedLinear`` and the
custom op ``torch.ops.tilevm.quantized_matmul``, beside the launch of the same kernel with all its arguments
bound per call (``kernel[grid](...)``) and with the weight bound once (``kernel.partial``), an
allocation of the output (``torch.empty``), torch's ``F.linear`` in float16, and the kernel's GPU time.

    PYTHONPATH=. python benchmarks/host_path.py [--m 1 16] [--shape 4096x4096] [--dtype int4]

Two times per row, each the median over ``REPEATS`` runs of ``CALLS`` calls in a row (the least, without a
GPU):

- host: the host's time per call, while the GPU is kept busy by a sleep queued first (so the queue never
  makes the host wait): what the host path costs;
- eager: the wall time per call of calls back to back with one synchronisation at the end (what an eager
  caller sees: the larger of the host time and the GPU time).

The issue's goal is an eager time within 1.2x of the GPU time. On a GPU, two more rows time the driver
call alone (``cuLaunchKernel``, its parameters filled once): through cuda-python, as tilevm calls it (the
part of the bound launch that tilevm's Python does not decide), and through ctypes on the driver's own
function pointer (what a direct call would cost instead of cuda-python's wrapper).

Without a GPU (or with ``--cpu-side``) the tensors are on the CPU and their launches take the host path of
a GPU launch (``host_only_launches``: binder, table, grid check, the kernel's parameter buffer filled) with
a driver call that does nothing: the host column is then that CPU side of tilevm's launch, timed in the
thread's CPU time (``time.thread_time``: a machine shared with other work inflates wall times, not this),
and there is no eager or GPU column.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from tilevm.ops import QuantizedLinear, quantize_weight, quantized_matmul, tuning
from tilevm.ops.custom_op import quantized_matmul_op
from tilevm.ops.qgemm import host
from tilevm.ops.qgemm.host import QGemmLaunch, cached_launch, split_workspace
from tilevm.runtime.cuda import CudaLauncher, driver
from tilevm.runtime.cuda import launch as cuda_launch
from tilevm.runtime.jit import Specialization
from tilevm.runtime.launcher import CudaLaunch
from tilevm.runtime.launcher_binder import Layout

CALLS = 300
REPEATS = 11


def median_us(
    run: Callable[[], object],
    calls: int,
    before: Callable[[], None],
    after: Callable[[], None],
    clock: Callable[[], float] = time.perf_counter,
    statistic: Callable[[list[float]], float] = statistics.median,
) -> float:
    """The median (or another ``statistic``) over ``REPEATS`` of the time per call of ``calls`` calls of
    ``run`` between ``before()`` (not timed) and ``after()`` (timed), in µs of ``clock``."""
    times = []
    for _ in range(REPEATS):
        before()
        start = clock()
        for _ in range(calls):
            run()
        after()
        times.append((clock() - start) / calls * 1e6)
    return statistic(times)


def host_us(run: Callable[[], object], gpu: bool) -> float:
    """The host's µs per call, the GPU kept busy by a sleep (about 100 µs a call) queued first, after the
    previous repeat's work has drained (untimed): without that, the repeats' launches pile up past CUDA's
    launch queue, and the host then waits for the GPU at every call. Without a GPU, the least thread time
    of the repeats: work beside it on the machine's cores (sharing their caches) only ever adds to it."""
    if not gpu:
        return median_us(run, CALLS, lambda: None, lambda: None, time.thread_time, min)
    cycles = int(1.5e3 * 100 * CALLS)  # ~100 µs a call at the H100's ~1.5 GHz (a margin: the host is faster)

    def drained_then_asleep() -> None:
        torch.cuda.synchronize()
        torch.cuda._sleep(cycles)

    return median_us(run, CALLS, drained_then_asleep, lambda: None)


def eager_us(run: Callable[[], object]) -> float:
    """The wall µs per call of calls back to back, one synchronisation at the end."""
    return median_us(run, CALLS, torch.cuda.synchronize, torch.cuda.synchronize)


def host_only_launches(target: str = "sm_90") -> None:
    """Launches on CPU tensors take ``CudaLaunch``'s host path from now on: the kernel's PTX for
    ``target`` (compiled here, for its parameters), loaded nowhere, on stream 0, with a driver whose
    ``cuLaunchKernel`` returns success and does nothing; the configurations are the GPU's defaults, and
    split-K launches keep their buffers (one pair, grown as needed) as on a GPU."""
    driver._bindings = SimpleNamespace(
        cuLaunchKernel=lambda *arguments: (0,),
        CUresult=SimpleNamespace(CUDA_ERROR_INVALID_CONTEXT=201, CUDA_ERROR_INVALID_HANDLE=400),
    )
    cuda_launch.load = lambda compiled, device_index, cubin: SimpleNamespace(function=None)

    def launch_on(self: Specialization, device: torch.device, names: list[str]) -> CudaLaunch:
        launch = self.launches.get(device)
        if launch is None:
            ir_names = [parameter.name for parameter in self.parameters]
            layout = Layout.of(self.described, self.parameters, names)
            compiled = self.compiled_ptx(target)
            launcher = CudaLauncher(compiled, 0, None, ir_names, layout.select, layout.width)
            launch = self.launches[device] = CudaLaunch(self, layout, names, 0, launcher)
            launch.stream = lambda device_index: 0
        return launch

    Specialization.launch_on = launch_on
    buffers: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def split_buffers(device: torch.device, partials: int, tiles: int) -> tuple[torch.Tensor, torch.Tensor]:
        workspace, counters = buffers.get(device, (torch.empty(0), torch.empty(0)))
        if workspace.numel() < partials or counters.numel() < tiles:
            workspace, counters = torch.empty(partials), torch.zeros(tiles, dtype=torch.int32)
            buffers[device] = (workspace, counters)
        return workspace, counters

    # split-K launches keep their buffers as on a GPU (one stream)
    host.split_buffers = split_buffers
    host.STREAM_BUFFER_DEVICES = ("cuda", "cpu")
    # the GPU's configuration (TILEVM_AUTOTUNE=0's), not the interpreter's
    gpu_default = tuning.default_config
    tuning.default_config = lambda m, n, k, bits, device, *rest: gpu_default(m, n, k, bits, "cuda", *rest)


def rows_for(m: int, n: int, k: int, dtype: str, device: str) -> list[tuple[str, Callable[[], object]]]:
    """The calls to time at ``M = m`` for an ``[n, k]`` weight quantized to ``dtype`` (groups of 128)."""
    generator = torch.Generator(device=device).manual_seed(m)
    weight = torch.randn(n, k, device=device, generator=generator).half()
    qweight = quantize_weight(weight, dtype, group_size=128)
    layer = QuantizedLinear(qweight)
    x = torch.randn(m, k, device=device, generator=generator).half()
    x3 = x.reshape(1, m, k)
    reference = x.double() @ qweight.dequantize(torch.float64).T
    if device == "cuda":  # checked before it is timed
        error = (quantized_matmul(x, qweight).double() - reference).norm() / reference.norm()
        assert error < 4e-3, f"quantized_matmul is off by {error:.2e}"
    launch = cached_launch(x, qweight, None)
    grid = (launch.columns, -(-m // launch.block_m), launch.split_k)
    out = torch.empty(m, n, dtype=x.dtype, device=device)
    split = {}  # the split-K buffers, made once here (quantized_matmul asks for them at every call)
    if launch.split_k > 1:
        split["workspace"], split["counters"] = split_workspace(
            x.device, launch.split_k, m, n, grid[0] * grid[1]
        )
    tensors = 7 + len(split)
    return [
        ("quantized_matmul(x, qweight)", lambda: quantized_matmul(x, qweight)),
        ("QuantizedLinear, x [M, K]", lambda: layer(x)),
        ("QuantizedLinear, x [1, M, K]", lambda: layer(x3)),
        ("custom op torch.ops.tilevm.quantized_matmul", lambda: quantized_matmul_op(x, qweight)),
        (
            f"kernel[grid]({tensors} tensors and the constexprs), out given",
            lambda: launch.kernel.launch(grid, x, out=out, **split, **launch.fixed),
        ),
        (
            f"kernel.partial(weight)[grid](x, out{', workspace, counters' if split else ''}), out given",
            lambda: launch.partial.launch(grid, x, out=out, **split),
        ),
        *(
            [
                (
                    "cuLaunchKernel alone (cuda-python), parameters filled",
                    driver_call(launch, grid, x, out, split),
                ),
                (
                    "cuLaunchKernel alone (ctypes, cuGetProcAddress), parameters filled",
                    driver_call(launch, grid, x, out, split, through_ctypes=True),
                ),
            ]
            if device == "cuda"
            else []
        ),
        ("torch.empty(M, N)", lambda: torch.empty(m, n, dtype=x.dtype, device=device)),
        ("torch F.linear float16", lambda: F.linear(x, weight)),
    ]


def driver_call(
    launch: QGemmLaunch,
    grid: tuple[int, int, int],
    x: torch.Tensor,
    out: torch.Tensor,
    split: dict,
    through_ctypes: bool = False,
) -> Callable[[], object]:
    """The bound launch's driver call alone: ``cuLaunchKernel`` of its specialization with the parameters
    of ``launch.partial[grid](x, out, **split)``, filled once; through cuda-python's wrapper, or
    (``through_ctypes``) through ctypes on the driver's own function pointer (``cuGetProcAddress``, as
    cuda-python finds it: CUDA 4.0's ABI, the default stream mode), its argument types set once."""
    launch.partial.launch(grid, x, out=out, **split)  # compiled, loaded and filed under its key
    bound = launch.partial.binder(x, out=out, **split)
    launcher = launch.partial.launches[bound[0]].launcher
    launcher.parameters.fill(bound[1])
    stream = torch.cuda.current_stream().cuda_stream
    if through_ctypes:
        bindings = driver.bindings()
        flags = bindings.CUdriverProcAddress_flags.CU_GET_PROC_ADDRESS_DEFAULT
        address = driver.check(bindings.cuGetProcAddress(b"cuLaunchKernel", 4000, flags), "cuGetProcAddress")
        address = address[0] if isinstance(address, tuple) else address
        unsigned, pointer = ctypes.c_uint, ctypes.c_void_p
        prototype = ctypes.CFUNCTYPE(ctypes.c_int, pointer, *[unsigned] * 7, pointer, pointer, pointer)
        launch_kernel = prototype(int(address))
        function, parameters = int(launcher._function), launcher.parameters.address
        threads, shared = launcher._num_threads, launcher._shared_bytes

        def submit(x: int, y: int, z: int, stream: int) -> int:
            return launch_kernel(function, x, y, z, threads, 1, 1, shared, stream, parameters, None)

    else:
        submit = launcher._submit

    def call() -> None:
        result = submit(*grid, stream)
        if result:
            raise RuntimeError(f"cuLaunchKernel failed: {result}")

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--shape", default="4096x4096", help="NxK")
    parser.add_argument("--dtype", default="int4")
    parser.add_argument("--cpu-side", action="store_true", help="CPU tensors, no executor (see above)")
    arguments = parser.parse_args()
    gpu = torch.cuda.is_available() and not arguments.cpu_side
    device = "cuda" if gpu else "cpu"
    if not gpu:
        host_only_launches()
    n, k = (int(extent) for extent in arguments.shape.split("x"))
    host = f"{torch.cuda.get_device_name()}'s host" if gpu else "no GPU: CPU side only"
    statistic = "median" if gpu else "least of the repeats"
    print(f"# {host}; torch {torch.__version__}; {arguments.dtype} {n}x{k}; µs per call ({statistic})")
    print("| M | call | host µs | eager µs | GPU µs |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for m in arguments.m:
        rows = rows_for(m, n, k, arguments.dtype, device)
        for name, run in rows:
            if not gpu and name.startswith("torch F.linear"):
                continue  # a real product on the CPU: not a launch
            run()
            eager = f"{eager_us(run):.1f}" if gpu else "-"
            timed = f"{tv_gpu_us(run):.1f}" if gpu and not name.startswith("torch.empty") else "-"
            print(f"| {m} | {name} | {host_us(run, gpu):.1f} | {eager} | {timed} |", flush=True)


def tv_gpu_us(run: Callable[[], object]) -> float:
    """The median GPU time of ``run()`` (``tilevm.autotune``'s timer: L2 flushed, host time hidden)."""
    from tilevm.autotune.timing import gpu_time_us

    return gpu_time_us(run, warmup=10, repeats=50)


if __name__ == "__main__":
    main()
