"""``kernel.partial(**fixed)``: launches with the other arguments compute what the kernel computes with all
of them (against numpy), share the kernel's specializations, keep their own launches (two partial kernels
of one kernel never mix their fixed arguments), read a fixed tensor's current values, give a callable grid
every argument, and refuse wrong arguments with the kernel's own errors. On a GPU a partial kernel's launch
holds the fixed values in its own parameter buffer: through a recording stand-in for the driver, every
parameter the driver reads is the slow path's value for the full launch."""

import ctypes
import struct
import sys
import types

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.errors import LaunchError
from tilevm.runtime import jit
from tilevm.runtime.binding import bind_arguments, flat_values
from tilevm.runtime.cuda import driver
from tilevm.runtime.cuda import launch as cuda_launch
from tilevm.runtime.launcher import CudaLaunch
from tilevm.runtime.launcher_binder import Layout


@tv.kernel(num_warps=1)
def axpy(x: tv.Tensor, y: tv.Tensor, out: tv.Tensor, alpha: float, n: int, BLOCK: tv.constexpr):
    offsets = [tv.block_idx() * BLOCK]
    xs = tv.load_global(x, offsets=offsets, shape=[BLOCK])
    ys = tv.load_global(y, offsets=offsets, shape=[BLOCK])
    tv.store_global(out, tv.cast(xs * alpha, ys.dtype) + ys, offsets=offsets)


def seeded(count: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(count, generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_a_partial_launch_computes_the_full_launch():
    x = seeded(40, 1)
    partial = axpy.partial(x=x, alpha=0.75, BLOCK=16)
    for seed, n in [(2, 40), (3, 37)]:  # a ragged size: the masked tail
        y = seeded(n, seed)
        out = torch.full((n,), float("nan"))
        partial[(tv.cdiv(n, 16),)](y=y, out=out, n=n)
        expected = 0.75 * x.numpy()[:n].astype(np.float64) + y.numpy()
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_a_partial_launch_shares_the_kernels_specializations():
    x, y = seeded(32, 4), seeded(32, 5)
    out = torch.full((32,), float("nan"))
    axpy[(2,)](x, y, out, 2.0, 32, BLOCK=16)
    compiled = dict(axpy.programs)
    partial = axpy.partial(x=x, alpha=2.0, BLOCK=16)
    out2 = torch.full((32,), float("nan"))
    partial[(2,)](y, out2, 32)
    partial[(2,)](y, out2, 32)
    assert axpy.programs == compiled  # nothing compiled again
    np.testing.assert_allclose(out2.numpy(), (2 * x.double() + y.double()).numpy(), rtol=1e-6)


def test_a_fixed_tensor_is_read_at_every_launch():
    x, y = seeded(16, 6), seeded(16, 7)
    out = torch.full((16,), float("nan"))
    partial = axpy.partial(x=x, y=y, alpha=1.0, BLOCK=16)
    partial[(1,)](out=out, n=16)
    x.mul_(-2)  # values changed in place: the launch reads them
    partial[(1,)](out=out, n=16)
    np.testing.assert_allclose(out.numpy(), (x.double() + y.double()).numpy(), rtol=1e-6)


def test_other_dtypes_of_the_free_arguments_specialize_again():
    x = seeded(16, 8, torch.float16)
    partial = axpy.partial(x=x, alpha=0.5, BLOCK=16)
    for dtype in (torch.float16, torch.float32):
        y = seeded(16, 9, dtype)
        out = torch.full((16,), float("nan"), dtype=dtype)
        partial[(1,)](y, out, 16)
        expected = (0.5 * x.double()).to(dtype).double() + y.double()
        np.testing.assert_allclose(out.double().numpy(), expected.numpy(), rtol=2e-3, atol=2e-3)


def test_wrong_arguments_get_the_kernels_errors():
    with pytest.raises(LaunchError, match="has no parameter 'beta'"):
        axpy.partial(beta=1.0)
    partial = axpy.partial(x=seeded(16, 10), alpha=1.0, BLOCK=16)
    with pytest.raises(LaunchError, match="missing a required argument: 'n'"):
        partial[(1,)](seeded(16, 11), torch.zeros(16))
    with pytest.raises(LaunchError, match="'n' must be a Python int"):
        partial[(1,)](seeded(16, 11), torch.zeros(16), "16")


def test_blocks_per_multiprocessor_needs_cuda_tensors():
    x = seeded(8, 1)
    with pytest.raises(LaunchError, match=r"axpy.blocks_per_multiprocessor needs CUDA tensors, got cpu"):
        axpy.blocks_per_multiprocessor(x, x, x.clone(), 2.0, 8, BLOCK=8)


def test_partial_kernels_of_one_kernel_keep_their_own_fixed_arguments():
    xs = [seeded(24, 12), seeded(24, 13)]
    partials = [axpy.partial(x=xs[0], alpha=0.5, BLOCK=8), axpy.partial(x=xs[1], alpha=-1.25, BLOCK=8)]
    for seed in (14, 15):  # interleaved, with one specialization: each launch with its own x and alpha
        for x, alpha, partial in zip(xs, (0.5, -1.25), partials):
            y = seeded(21, seed)
            out = torch.full((21,), float("nan"))
            partial[(3,)](y, out, 21)
            expected = alpha * x.double()[:21] + y.double()
            np.testing.assert_allclose(out.double().numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_a_callable_grid_is_given_every_argument_by_name():
    x, y = seeded(32, 16), seeded(32, 17)
    partial = axpy.partial(x=x, alpha=3.0, BLOCK=8)
    seen = []

    def grid(named: dict) -> tuple[int]:
        seen.append(sorted(named))
        return (tv.cdiv(named["n"], named["BLOCK"]),)

    for _ in range(2):  # the slow path, then the partial kernel's own launch
        out = torch.full((32,), float("nan"))
        partial[grid](y, out, 32)
        np.testing.assert_allclose(out.numpy(), (3 * x.double() + y.double()).numpy(), rtol=1e-6)
    assert seen == [["BLOCK", "alpha", "n", "out", "x", "y"]] * 2


#: read by ``shifted`` when it compiles: a change compiles it again (``tilevm.lang.captures``)
OFFSET = 1.0


@tv.kernel(num_warps=1)
def shifted(x: tv.Tensor, out: tv.Tensor, BLOCK: tv.constexpr):
    tile = tv.load_global(x, offsets=[0], shape=[BLOCK])
    tv.store_global(out, tile + OFFSET, offsets=[0])


def test_a_changed_global_replaces_a_partial_kernels_launch(monkeypatch):
    x = seeded(8, 28)
    partial = shifted.partial(x=x, BLOCK=8)
    for offset in (1.0, -2.5, -2.5):  # the launch kept, replaced by the new program's, kept
        monkeypatch.setattr(sys.modules[__name__], "OFFSET", offset)
        out = torch.full((8,), float("nan"))
        partial[(1,)](out)
        np.testing.assert_allclose(out.numpy(), (x.double() + offset).numpy(), rtol=1e-6)
    assert len(partial.launches) == 1


class RecordingDriver(types.SimpleNamespace):
    """Records, at every ``cuLaunchKernel``, each parameter's value in its slot (which the driver copies),
    read as its kind says; the function handle is the kernel's ``CompiledPtx``."""

    def __init__(self) -> None:
        results = types.SimpleNamespace(CUDA_ERROR_INVALID_CONTEXT=201, CUDA_ERROR_INVALID_HANDLE=400)
        super().__init__(calls=[], CUresult=results)

    def cuLaunchKernel(self, *arguments):
        kinds = arguments[0].parameters
        pointers = (ctypes.c_void_p * len(kinds)).from_address(arguments[9])
        slots = [ctypes.string_at(pointers[index], 8) for index in range(len(kinds))]
        formats = {"pointer": "<Q", "i32": "<i4x", "f32": "<f4x"}
        self.calls.append([struct.unpack(formats[kind], slot)[0] for kind, slot in zip(kinds, slots)])
        return (0,)


@pytest.fixture
def recorded_gpu_launches(monkeypatch):
    """Launches on CPU tensors take ``CudaLaunch``'s path (the kernel's sm_90 PTX, loaded nowhere) to a
    recording driver; returns the driver."""
    fake = RecordingDriver()
    monkeypatch.setattr(driver, "_bindings", fake)
    loaded = lambda compiled, index, cubin: types.SimpleNamespace(function=compiled)  # noqa: E731
    monkeypatch.setattr(cuda_launch, "load", loaded)

    def launch_on(self: jit.Specialization, device: torch.device, names: list[str]) -> CudaLaunch:
        layout = Layout.of(self.described, self.parameters, names)
        ir_names = [parameter.name for parameter in self.parameters]
        compiled = self.compiled_ptx("sm_90")
        launcher = cuda_launch.CudaLauncher(compiled, 0, None, ir_names, layout.select, layout.width)
        launch = CudaLaunch(self, layout, names, 0, launcher)
        launch.stream = lambda device_index: 0
        return launch

    monkeypatch.setattr(jit.Specialization, "launch_on", launch_on)
    return fake


def test_a_partial_launch_on_a_gpu_passes_every_parameter_of_the_full_launch(recorded_gpu_launches):
    xs = [seeded(40, 18), seeded(64, 19)[::2]]  # the second: stride 2, a parameter
    partials = [axpy.partial(x=xs[0], alpha=0.75, BLOCK=16), axpy.partial(x=xs[1], alpha=-2.0, BLOCK=16)]
    expected = []
    for seed, n in [(20, 40), (21, 32), (22, 40)]:
        for x, alpha, partial in zip(xs, (0.75, -2.0), partials):
            y, out = seeded(n, seed), torch.empty(n)
            for _ in range(2):  # the slow path, then the partial kernel's own launch
                partial[(tv.cdiv(n, 16),)](y, out, n)
            arguments = {"x": x, "y": y, "out": out, "alpha": alpha, "n": n, "BLOCK": 16}
            values = bind_arguments(axpy.signature, (), arguments)
            expected += [flat_values(axpy.compiled(values).parameters, values, addresses=True)] * 2
    assert recorded_gpu_launches.calls == expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_partial_kernels_on_a_gpu_keep_their_own_fixed_arguments():
    xs = [seeded(40, 23).cuda(), seeded(80, 24).cuda()[::2]]
    alphas = (0.5, -1.5)
    partials = [axpy.partial(x=x, alpha=alpha, BLOCK=16) for x, alpha in zip(xs, alphas)]
    for seed, n in [(25, 40), (26, 33), (27, 40)]:  # interleaved, each twice (slow path, then its own)
        for x, alpha, partial in zip(xs, alphas, partials):
            y = seeded(n, seed).cuda()
            for _ in range(2):
                out = torch.full((n,), float("nan"), device="cuda")
                partial[(tv.cdiv(n, 16),)](y, out, n)
                expected = alpha * x[:n].double() + y.double()
                np.testing.assert_allclose(out.cpu().numpy(), expected.cpu().numpy(), rtol=1e-6, atol=1e-6)
