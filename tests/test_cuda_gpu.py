"""The CUDA runtime on a real GPU, with the hand-written PTX kernels of ``test_cuda_ptxas``: results against
torch's, bit for bit (the kernels round like torch's own operations); CUDA-graph capture and replay; the
opt-in shared memory path; the errors. Skipped where torch sees no CUDA device."""

from __future__ import annotations

import dataclasses
import struct
import threading

import numpy as np
import pytest
import torch
from test_cuda_ptxas import needs_ptxas, stand_in

from tilevm.errors import CudaError, LaunchError
from tilevm.runtime.cuda import cache, device, module
from tilevm.runtime.cuda.launch import CudaLauncher

pytestmark = pytest.mark.gpu

BLOCK = 128


def target() -> str:
    return device.properties(torch.cuda.current_device()).target


def axpy(launcher: CudaLauncher, out, a, b, scale: float, stream=None) -> None:
    n = a.numel()  # out has one poisoned element past the end
    stream = torch.cuda.current_stream() if stream is None else stream
    launcher.launch(
        ((n + BLOCK - 1) // BLOCK, 1, 1),
        (out.data_ptr(), a.data_ptr(), b.data_ptr(), scale, n),
        stream.cuda_stream,
    )


def inputs(n: int, seed: int, device_index: int = 0):
    generator = torch.Generator(device=f"cuda:{device_index}").manual_seed(seed)
    a = torch.randn(n + 7, device=f"cuda:{device_index}", generator=generator)[3 : 3 + n]  # not at offset 0
    b = torch.randn(n, device=f"cuda:{device_index}", generator=generator)
    out = torch.full((n + 1,), float("nan"), device=f"cuda:{device_index}")  # poisoned; one past the end
    return out, a, b


def assert_axpy(out, a, b, scale: float) -> None:
    n = a.numel()
    torch.testing.assert_close(out[:n], a + b * scale, rtol=0, atol=0)
    assert out[n:].isnan().all(), "the kernel wrote past n"


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (127, 1), (4099, 2), (100_003, 3)])
def test_axpy_from_ptx_equals_torch(n, seed):
    launcher = CudaLauncher(stand_in("axpy", target(), num_threads=BLOCK), torch.cuda.current_device())
    assert not launcher.kernel.from_cubin
    out, a, b = inputs(n, seed)
    scale = 1.0 + seed / 3
    axpy(launcher, out, a, b, scale)
    assert_axpy(out, a, b, scale)


@needs_ptxas
def test_axpy_from_a_cubin_equals_torch():
    compiled = stand_in("axpy", target(), num_threads=256)
    index = torch.cuda.current_device()
    cubin = module.cubin_for(compiled, index)
    properties = device.properties(index)
    if cubin is None:
        pytest.skip(
            f"no cubin this device's driver loads ({properties.name}, driver {properties.driver_version})"
        )
    launcher = CudaLauncher(compiled, index, cubin=cubin)
    assert launcher.kernel.from_cubin
    out, a, b = inputs(5000, 4)
    axpy(launcher, out, a, b, -0.75)
    assert_axpy(out, a, b, -0.75)


def test_a_module_is_loaded_once_per_kernel_and_device():
    compiled = stand_in("axpy", target(), num_threads=64)
    index = torch.cuda.current_device()
    assert module.load(compiled, index) is module.load(compiled, index)
    assert CudaLauncher(compiled, index).kernel is CudaLauncher(compiled, index).kernel


def test_launches_on_a_side_stream():
    launcher = CudaLauncher(stand_in("axpy", target(), num_threads=BLOCK), torch.cuda.current_device())
    out, a, b = inputs(9000, 5)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        axpy(launcher, out, a, b, 3.0, stream=side)
    torch.cuda.current_stream().wait_stream(side)
    assert_axpy(out, a, b, 3.0)


def test_graph_capture_and_replay_with_new_inputs():
    launcher = CudaLauncher(stand_in("axpy", target(), num_threads=BLOCK), torch.cuda.current_device())
    out, a, b = inputs(3001, 6)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up off the default stream, as torch's graph docs ask
        axpy(launcher, out, a, b, 2.0)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        axpy(launcher, out, a, b, 2.0)
    for seed in (7, 8, 9):
        _, new_a, new_b = inputs(3001, seed)
        a.copy_(new_a)
        b.copy_(new_b)
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert_axpy(out, a, b, 2.0)


def test_more_than_48_kib_of_shared_memory():
    index = torch.cuda.current_device()
    optin = device.properties(index).max_shared_bytes_optin
    assert optin > 48 * 1024
    num_threads, blocks = 256, 37
    offset = min(96 * 1024, optin - 4 * num_threads)  # the block's floats sit beyond the first 48 KiB
    compiled = stand_in(
        "reverse_shared", target(), num_threads=num_threads, shared_bytes=offset + 4 * num_threads
    )
    launcher = CudaLauncher(compiled, index)
    source = torch.randn(
        blocks * num_threads, device="cuda", generator=torch.Generator("cuda").manual_seed(10)
    )
    out = torch.full_like(source, float("nan"))
    launcher.launch(
        (blocks, 1, 1), (out.data_ptr(), source.data_ptr(), offset), torch.cuda.current_stream().cuda_stream
    )
    expected = source.view(blocks, num_threads).flip(1).reshape(-1)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_scalar_parameters_reach_the_kernel_as_meant():
    """The kernel writes back the bits of every scalar it received; they must be the host's encoding of the
    values: numpy's for the integers and floats, torch's for bf16."""
    launcher = CudaLauncher(stand_in("scalars", target(), num_threads=1), torch.cuda.current_device())
    out = torch.full((8,), -1, dtype=torch.int64, device="cuda")
    values = (-100, 40000, -123456789, 2**63 + 5, 0.333, -2.5e4, 1.5e-3, np.pi)
    launcher.launch((1, 1, 1), (out.data_ptr(), *values), torch.cuda.current_stream().cuda_stream)
    received = [int(value) & (2**64 - 1) for value in out.cpu().tolist()]
    bf16 = torch.tensor([values[5]], dtype=torch.float64).to(torch.float32).to(torch.bfloat16)
    assert received == [
        int(np.int8(-100).view(np.uint8)),
        40000,
        int(np.int32(-123456789).view(np.uint32)),
        2**63 + 5,
        int(np.float16(0.333).view(np.uint16)),
        int(bf16.view(torch.int16).item()) & 0xFFFF,
        int(np.float32(1.5e-3).view(np.uint32)),
        struct.unpack("<Q", struct.pack("<d", np.pi))[0],
    ]


def test_an_empty_grid_launches_nothing():
    launcher = CudaLauncher(stand_in("axpy", target(), num_threads=BLOCK), torch.cuda.current_device())
    out, a, b = inputs(100, 11)
    launcher.launch((0, 1, 1), (out.data_ptr(), a.data_ptr(), b.data_ptr(), 1.0, 100), 0)
    torch.cuda.synchronize()
    assert out.isnan().all()


def test_a_thread_without_a_current_context_launches_and_leaves_torch_alone():
    """A new thread has no current context: the launch pushes the device's primary context, then pops it."""
    launcher = CudaLauncher(stand_in("axpy", target(), num_threads=BLOCK), torch.cuda.current_device())
    out, a, b = inputs(777, 12)
    torch.cuda.synchronize()
    failures = []

    def work():
        try:
            axpy(launcher, out, a, b, 0.5, stream=torch.cuda.default_stream())
        except Exception as error:
            failures.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert not failures
    torch.cuda.synchronize()
    assert_axpy(out, a, b, 0.5)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_a_kernel_on_the_second_device_while_torch_is_on_the_first():
    torch.cuda.set_device(0)
    launcher = CudaLauncher(stand_in("axpy", device.properties(1).target, num_threads=BLOCK), 1)
    out, a, b = inputs(5555, 13, device_index=1)
    axpy(launcher, out, a, b, 1.25, stream=torch.cuda.current_stream(1))
    assert torch.cuda.current_device() == 0
    torch.cuda.synchronize(1)
    assert_axpy(out, a, b, 1.25)


def test_device_properties_agree_with_torch():
    index = torch.cuda.current_device()
    ours = device.properties(index)
    theirs = torch.cuda.get_device_properties(index)
    assert ours.name == theirs.name
    assert ours.capability == (theirs.major, theirs.minor)
    assert ours.multiprocessor_count == theirs.multi_processor_count
    if hasattr(theirs, "shared_memory_per_block_optin"):  # torch 2.4 and newer
        assert ours.max_shared_bytes_optin == theirs.shared_memory_per_block_optin
    major, minor = (int(part) for part in torch.version.cuda.split(".")[:2])
    assert ours.driver_version >= major * 1000 + minor * 10  # a driver runs the toolkits up to its own


def test_bad_ptx_names_the_kernel_and_carries_the_jit_log():
    compiled = stand_in("axpy", target())
    compiled = dataclasses.replace(compiled, ptx=compiled.ptx.replace("mul.rn.f32 %f4", "mul.rn.f32 %q9"))
    with pytest.raises(CudaError) as raised:
        CudaLauncher(compiled, torch.cuda.current_device())
    message = str(raised.value)
    assert "cuModuleLoadDataEx failed for kernel 'axpy'" in message
    assert "JIT log:" in message and "%q9" in message


def test_a_missing_entry_names_the_call_and_the_error():
    compiled = dataclasses.replace(stand_in("axpy", target()), name="not_there")
    with pytest.raises(
        CudaError, match=r"cuModuleGetFunction failed for kernel 'not_there': CUDA_ERROR_NOT_FOUND"
    ):
        CudaLauncher(compiled, torch.cuda.current_device())


def test_blocks_the_device_cannot_run_are_refused_before_loading():
    index = torch.cuda.current_device()
    optin = device.properties(index).max_shared_bytes_optin
    too_much = stand_in("reverse_shared", target(), num_threads=128, shared_bytes=optin + 16)
    with pytest.raises(
        CudaError, match=rf"needs {optin + 16} bytes of shared memory a block; .* at most {optin}"
    ):
        CudaLauncher(too_much, index)
    with pytest.raises(CudaError, match="needs 2048 threads a block; CUDA allows 1 to 1024"):
        CudaLauncher(stand_in("axpy", target(), num_threads=2048), index)


def test_bad_grids_and_values_are_launch_errors():
    launcher = CudaLauncher(stand_in("axpy", target(), num_threads=BLOCK), torch.cuda.current_device())
    out, a, b = inputs(10, 14)
    values = (out.data_ptr(), a.data_ptr(), b.data_ptr(), 1.0, 10)
    with pytest.raises(LaunchError, match=r"kernel 'axpy': grid extent y=65536 is out of range"):
        launcher.launch((1, 65536, 1), values, 0)
    with pytest.raises(LaunchError, match=r"grid extent x=-1"):
        launcher.launch((-1, 1, 1), values, 0)
    with pytest.raises(LaunchError, match=r"parameter #4 \(i32\): 4294967296 does not fit in 32 bits"):
        launcher.launch((1, 1, 1), (*values[:4], 2**32), 0)


@needs_ptxas
def test_a_kernel_from_the_disk_cache_runs(tmp_path):
    index = torch.cuda.current_device()
    compiled = stand_in("axpy", target(), num_threads=96)  # a block size no other test loads
    disk = cache.DiskCache(tmp_path)
    key = cache.cache_key(compiled.ptx, compiled.target)
    disk.store_kernel(key, compiled, module.cubin_for(compiled, index))
    loaded, cubin = disk.load_kernel(key)
    launcher = CudaLauncher(loaded, index, cubin=cubin)
    assert launcher.kernel.from_cubin is (cubin is not None)
    out, a, b = inputs(1000, 15)
    n = 1000
    launcher.launch(((n + 95) // 96, 1, 1), (out.data_ptr(), a.data_ptr(), b.data_ptr(), 4.0, n), 0)
    assert_axpy(out, a, b, 4.0)
