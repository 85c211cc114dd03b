"""The GPU side of a launch, without a GPU: the device's properties and the driver's launcher are replaced by
recorders (their contract is ``tilevm.runtime.cuda``'s), so that what tilevm hands them can be checked: the
PTX for the device's target and its cubin, the launch values (tensors as their addresses, in the IR's
parameter order, a unit stride left out), the grid padded to three axes, torch's stream. The code is
stored on disk, and a new kernel object (another process) finds it without running the front end."""

from typing import ClassVar

import pytest
import torch

import tilevm as tv
import tilevm.runtime.jit as jit
from tilevm.runtime import launcher
from tilevm.runtime.binding import bind_arguments

cuda = pytest.importorskip("tilevm.runtime.cuda", reason="the cuda runtime has not landed yet")
codegen = pytest.importorskip("tilevm.codegen")
pytestmark = pytest.mark.skipif(not hasattr(codegen, "compile_to_ptx"), reason="codegen has not landed yet")

GPU = torch.device("cuda", 0)
STREAM = 0x5EED


def scale_add_function(x: tv.Tensor, y: tv.Tensor, out: tv.Tensor, n: int, alpha: float, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    a = tv.load_global(x, offsets=[start], shape=[BLOCK])
    b = tv.load_global(y, offsets=[start], shape=[BLOCK])
    tv.store_global(out, a * alpha + b, offsets=[start])


class RecordingLauncher:
    """``cuda.CudaLauncher``'s interface, recording what it is given instead of calling the driver: the
    parameters' values, at their positions among the values a launch gives (as its buffer's pointers
    pick them)."""

    made: ClassVar[list] = []
    launched: ClassVar[list] = []

    def __init__(self, compiled, device_index, cubin=None, names=None, positions=None, width=None) -> None:
        RecordingLauncher.made.append((compiled, device_index, cubin, tuple(names)))
        self.positions, self.width = positions, width

    def launch(self, grid, values, stream) -> None:
        assert len(values) == self.width
        RecordingLauncher.launched.append((grid, tuple(values[index] for index in self.positions), stream))


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    """An H100 (compute capability 9.0: target sm_90a) as device 0 with driver 13.0, a recording launcher,
    a cubin made of the PTX's name, and a disk cache in ``tmp_path``; returns the number of front-end
    compilations so far, in a dict."""
    device = cuda.DeviceProperties(0, "recorded H100", (9, 0), 132, 227 * 1024, 13000)
    monkeypatch.setattr(cuda, "properties", lambda index: device)
    monkeypatch.setattr(cuda, "CudaLauncher", RecordingLauncher)
    monkeypatch.setattr(cuda, "cubin_for", lambda compiled, index: b"cubin of " + compiled.name.encode())
    monkeypatch.setattr(launcher, "current_stream", lambda index: STREAM)
    monkeypatch.setattr(torch._C, "_cuda_getCurrentRawStream", lambda index: STREAM, raising=False)
    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    RecordingLauncher.made.clear()
    RecordingLauncher.launched.clear()
    counts = {"compiles": 0}
    compile_kernel = jit.compile_kernel

    def counting(*args, **kwargs):
        counts["compiles"] += 1
        return compile_kernel(*args, **kwargs)

    monkeypatch.setattr(jit, "compile_kernel", counting)
    return counts


def test_a_launch_hands_the_driver_the_ptx_the_cubin_and_the_values_by_address(fake_gpu):
    kernel = tv.kernel(num_warps=1)(scale_add_function)
    generator = torch.Generator().manual_seed(3)
    x, y, out = (torch.randn(40, generator=generator) for _ in range(3))
    arguments, constexprs = (x, y, out, 40, 1.5), {"BLOCK": 16}
    specialization = kernel.compiled(bind_arguments(kernel.signature, arguments, constexprs), GPU)
    launch = specialization.launch_on(GPU, kernel.names)
    compiled, device_index, cubin, names = RecordingLauncher.made[0]
    assert (compiled.target, device_index, cubin) == ("sm_90a", 0, b"cubin of " + compiled.name.encode())
    assert names == ("x", "x_size0", "y", "y_size0", "out", "out_size0", "n", "alpha")
    assert compiled.ptx == kernel.ptx(*arguments, target="sm_90a", **constexprs)
    assert launch.launch((3,), kernel.binder(*arguments, **constexprs))
    launch.run((3, 1), bind_arguments(kernel.signature, arguments, constexprs))  # the slow path's values
    addresses = (x.data_ptr(), 40, y.data_ptr(), 40, out.data_ptr(), 40, 40, 1.5)
    assert RecordingLauncher.launched == [((3, 1, 1), addresses, STREAM), ((3, 1, 1), addresses, STREAM)]


def test_another_process_finds_the_specialization_on_disk_without_the_front_end(fake_gpu):
    x = torch.randn(48, generator=torch.Generator().manual_seed(4))
    arguments, constexprs = (x, x, x, 48, 0.5), {"BLOCK": 16}
    first = tv.kernel(num_warps=1)(scale_add_function)
    stored = first.compiled(bind_arguments(first.signature, arguments, constexprs), GPU)
    stored.launch_on(GPU, first.names)
    assert fake_gpu["compiles"] == 1
    again = tv.kernel(num_warps=1)(scale_add_function)  # what a new process has: a kernel, no programs
    found = again.compiled(bind_arguments(again.signature, arguments, constexprs), GPU)
    found.launch_on(GPU, again.names)
    assert fake_gpu["compiles"] == 1, "the front end ran"
    assert RecordingLauncher.made[1][:3] == RecordingLauncher.made[0][:3]  # the same PTX and cubin
    assert found.tile_program == stored.tile_program and fake_gpu["compiles"] == 2  # compiled when asked for
    other = (x[:40], x[:40], x[:40], 40, 0.5)  # another specialization: not on disk
    again.compiled(bind_arguments(again.signature, other, constexprs), GPU)
    assert fake_gpu["compiles"] == 3
