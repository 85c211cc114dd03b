"""Launches on CUDA tensors (run on the lent GPU; skipped without one): the examples' kernels give what the
SIMT interpreter gives on the same inputs (bit for bit where the arithmetic is exact), the hot path
re-specializes on the GPU too, launches are captured in a CUDA graph and replayed, a second GPU runs the
kernel with its own module, and tensors on two devices are refused."""

import pathlib
import runpy

import pytest
import torch

import tilevm as tv

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def example(name: str) -> dict:
    """The globals of ``examples/<name>.py`` (its kernel and helpers), without running its main."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="example")


def on_both(kernel, grid, *tensors_and_scalars, **constexprs) -> tuple[list, list]:
    """Launch on CPU tensors (the SIMT interpreter) and on CUDA copies (outputs poisoned alike); the tensor
    arguments after each launch, CPU first."""
    cpu = [value.clone() if isinstance(value, torch.Tensor) else value for value in tensors_and_scalars]
    gpu = [value.cuda() if isinstance(value, torch.Tensor) else value for value in cpu]
    kernel[grid](*cpu, **constexprs)
    kernel[grid](*gpu, **constexprs)
    torch.cuda.synchronize()
    tensors = [index for index, value in enumerate(cpu) if isinstance(value, torch.Tensor)]
    return [cpu[index] for index in tensors], [gpu[index].cpu() for index in tensors]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_vector_add_on_the_gpu_is_the_interpreters_bit_for_bit():
    vector_add = example("vector_add")["vector_add"]
    n, block = 1000, 256
    a, b = torch.randn(n, generator=seeded(1)), torch.randn(n, generator=seeded(2))
    out = torch.full((n,), float("nan"))
    cpu, gpu = on_both(vector_add, (tv.cdiv(n, block),), a, b, out, BLOCK=block)
    assert torch.equal(cpu[2], gpu[2]) and torch.equal(gpu[2], a + b)


def test_softmax_and_layer_norm_on_the_gpu_are_the_interpreters_within_rounding():
    rows, columns, block = 37, 300, 512
    x = torch.randn(rows, columns, generator=seeded(3)) * 4
    cpu, gpu = on_both(
        example("softmax")["softmax"], (rows,), x, torch.full_like(x, float("nan")), BLOCK=block
    )
    # exp is an approximate instruction on the GPU, exact-rounded in the interpreter: a few float32 ulps
    torch.testing.assert_close(gpu[1], cpu[1], rtol=1e-5, atol=1e-7)
    half = (x * 0.75 + 1).half()
    weight, bias = (
        torch.randn(columns, generator=seeded(4)).half(),
        torch.randn(columns, generator=seeded(5)).half(),
    )
    arguments = (half, weight, bias, torch.full_like(half, float("nan")), columns, 1e-5)
    cpu, gpu = on_both(example("layer_norm")["layer_norm"], (rows,), *arguments, BLOCK=block)
    # float32 statistics (rsqrt approximate on the GPU), one float16 rounding: one float16 ulp apart at most
    torch.testing.assert_close(gpu[3], cpu[3], rtol=2**-10, atol=2**-14)


def test_the_matmul_examples_on_the_gpu_are_the_interpreters_within_float16_rounding():
    namespace = example("matmul_fp16")
    m, n, k = 70, 96, 200
    a = torch.randn(m, k, generator=seeded(6)).half()
    b = torch.randn(k, n, generator=seeded(7)).half()
    c = torch.full((m, n), float("nan"), dtype=torch.float16)
    grid = (tv.cdiv(m, 32), tv.cdiv(n, 32))
    cpu, gpu = on_both(namespace["matmul"], grid, a, b, c, BM=32, BN=32, BK=32, STAGES=2)
    # the same products summed in the same order in float32; only the mma unit's internal rounding differs
    torch.testing.assert_close(gpu[2], cpu[2], rtol=2e-3, atol=2e-3)
    namespace = example("w4a16_matmul")
    m, n, k, group = 5, 96, 256, 64
    x = torch.randn(m, k, generator=seeded(8)).half()
    packed, scales = namespace["quantize"](torch.randn(k, n, generator=seeded(9)), group)
    out = torch.full((m, n), float("nan"), dtype=torch.float16)
    grid = (tv.cdiv(m, 16), tv.cdiv(n, 32))
    cpu, gpu = on_both(namespace["w4a16_matmul"], grid, x, packed, scales, out, BM=16, BN=32, GROUP=group)
    torch.testing.assert_close(gpu[3], cpu[3], rtol=2e-3, atol=2e-3)


def test_a_misaligned_or_strided_launch_after_a_cached_one_is_right_on_the_gpu():
    vector_add = example("vector_add")["vector_add"]
    storage = torch.randn(2 * 1001, generator=seeded(10)).cuda()
    for a in (storage[:1000], storage[1:1001], storage[::2][:1000], storage[:1000]):  # aligned, off, strided
        b = storage.flip(0)[: len(a)].clone()
        out = torch.full_like(b, float("nan"))
        vector_add[(tv.cdiv(len(a), 256),)](a, b, out, BLOCK=256)
        assert torch.equal(out, a + b)


def test_launches_are_captured_in_a_cuda_graph_and_replayed():
    vector_add = example("vector_add")["vector_add"]
    n, block = 4096, 256
    a, b = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    out = torch.full_like(a, float("nan"))
    vector_add[(n // block,)](a, b, out, BLOCK=block)  # compiled and loaded before capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
        vector_add[(n // block,)](a, b, out, BLOCK=block)
        vector_add[(n // block,)](out, b, out, BLOCK=block)  # out = a + 2b
    for seed in (11, 12):
        a.copy_(torch.randn(n, generator=seeded(seed)))
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, (a + b) + b)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second CUDA device")
def test_tensors_on_the_second_gpu_run_there():
    vector_add = example("vector_add")["vector_add"]
    for device in ("cuda:0", "cuda:1", "cuda:1"):  # the second launch on cuda:1 takes the hot path
        a = torch.randn(1000, generator=seeded(13)).to(device)
        b = torch.randn(1000, generator=seeded(14)).to(device)
        out = torch.full_like(a, float("nan"))
        vector_add[(4,)](a, b, out, BLOCK=256)
        torch.cuda.synchronize(device)
        assert torch.equal(out.cpu(), a.cpu() + b.cpu())


def test_tensors_on_two_devices_are_refused():
    vector_add = example("vector_add")["vector_add"]
    a = torch.randn(256, device="cuda")
    vector_add[(1,)](a, a, a, BLOCK=256)
    with pytest.raises(tv.LaunchError, match=r"different devices: \['cpu', 'cuda:0'\]"):
        vector_add[(1,)](a, a.cpu(), a, BLOCK=256)


def test_blocks_per_multiprocessor_meets_the_chips_limits():
    # CUDA's limits for compute capability 8.0 to 9.0 (the programming guide's table): at most 2048 resident
    # threads an SM, and 32 resident blocks on 8.0 and 9.0 (16 on 8.6 and 8.9); a small copy kernel uses
    # too few registers to be limited by them, so the thread and block limits decide
    @tv.kernel(num_warps=1)
    def copy32(x: tv.Tensor, out: tv.Tensor):
        offsets = [tv.block_idx() * 32]
        tv.store_global(out, tv.load_global(x, offsets=offsets, shape=[32]), offsets=offsets)

    copy1024 = tv.kernel(copy32.function, num_warps=32)
    x = torch.randn(4096, device="cuda")
    out = torch.empty_like(x)
    major, minor = torch.cuda.get_device_capability()
    block_limit = 16 if (major, minor) in ((8, 6), (8, 9)) else 32
    assert copy32.blocks_per_multiprocessor(x, out) == min(block_limit, 2048 // 32)
    assert copy1024.blocks_per_multiprocessor(x, out) == 2048 // 1024
