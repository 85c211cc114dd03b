"""The launch table on CPU tensors: a repeated launch takes the hot path (no binding, no compile); a launch
whose tensors lost what the program assumed (a 16-byte aligned address, a unit stride, a dtype, a size
multiple of 16) compiles its own specialization; bad arguments after a cached launch are refused in the
slow path's words. Results are checked against torch."""

import pytest
import torch

import tilevm as tv
import tilevm.runtime.jit as jit
from tilevm.ir import parse
from tilevm.ir.thread import THREAD_IR


def scale_add_function(x: tv.Tensor, y: tv.Tensor, out: tv.Tensor, n: int, alpha: float, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    a = tv.load_global(x, offsets=[start], shape=[BLOCK])
    b = tv.load_global(y, offsets=[start], shape=[BLOCK])
    if start < n:
        tv.store_global(out, a * alpha + b, offsets=[start])


@pytest.fixture
def scale_add() -> jit.Kernel:
    """A kernel of its own for each test, so that what a test compiles is its own doing."""
    return tv.kernel(num_warps=1)(scale_add_function)


@pytest.fixture
def counted(monkeypatch):
    """How many front-end compilations and slow launches happened, by name."""
    counts = {"compiles": 0, "slow": 0}
    compile_kernel, launch_slowly = jit.compile_kernel, jit.Kernel.launch_slowly

    def counting_compile(*args, **kwargs):
        counts["compiles"] += 1
        return compile_kernel(*args, **kwargs)

    def counting_slow(*args, **kwargs):
        counts["slow"] += 1
        return launch_slowly(*args, **kwargs)

    monkeypatch.setattr(jit, "compile_kernel", counting_compile)
    monkeypatch.setattr(jit.Kernel, "launch_slowly", counting_slow)
    return counts


def randn(count: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(count, generator=torch.Generator().manual_seed(seed)).to(dtype)


def run(scale_add: jit.Kernel, x: torch.Tensor, y: torch.Tensor, alpha: float = 1.5) -> torch.Tensor:
    """``scale_add`` on ``x`` and ``y`` (poisoned output first), checked against torch, returned."""
    out = torch.full_like(x, float("nan"))
    block = 16
    scale_add[(tv.cdiv(len(x), block),)](x, y, out, len(x), alpha, BLOCK=block)
    torch.testing.assert_close(out, (x.double() * alpha + y.double()).to(x.dtype), rtol=1e-6, atol=1e-6)
    return out


def test_a_repeated_launch_takes_the_hot_path(scale_add, counted):
    x, y = randn(40, 1), randn(40, 2)
    run(scale_add, x, y)
    assert counted == {"compiles": 1, "slow": 1}
    run(scale_add, randn(40, 3), randn(40, 4), alpha=-0.25)  # other tensors and scalar, the same key
    run(scale_add, randn(24, 5), randn(24, 6))  # sizes 40 and 24: neither a multiple of 16
    assert counted == {"compiles": 1, "slow": 1}


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        (lambda x: x[1:], "an address 4 bytes past a 16-byte boundary"),
        (lambda x: torch.stack([x, x], 1)[:, 0], "stride 2"),
        (lambda x: x.double(), "float64"),
        (lambda x: torch.cat([x[:40], x[:8]]), "48 elements, a multiple of 16"),
    ],
)
def test_a_launch_that_breaks_an_assumption_compiles_its_own_program(scale_add, counted, changed, why):
    x, y = randn(41, 7), randn(41, 8)
    run(scale_add, x[:40], y[:40])
    before = dict(counted)
    other_x, other_y = changed(x), changed(y)
    if other_x.dtype == torch.float64:
        with pytest.raises(tv.LaunchError, match=r"torch dtype torch\.float64"):
            run(scale_add, other_x, other_y)
        return
    run(scale_add, other_x, other_y)
    assert counted["compiles"] == before["compiles"] + 1, why
    run(scale_add, other_x, other_y)  # and now it is cached in its turn
    assert counted["compiles"] == before["compiles"] + 1 and counted["slow"] == before["slow"] + 1


def test_a_float16_launch_after_a_float32_one_gets_a_float16_program(scale_add, counted):
    x, y = randn(40, 9), randn(40, 10)
    run(scale_add, x, y)
    run(scale_add, x.half(), y.half(), alpha=0.5)  # 0.5 * x is exact: one rounding, as torch's
    assert counted["compiles"] == 2


@pytest.mark.parametrize(
    ("arguments", "keywords", "message"),
    [
        (
            (torch.zeros(40, dtype=torch.bool), 40, 1.0),
            {},
            r"torch dtype torch.bool, which tilevm does not read \(pass",
        ),
        ((torch.zeros(40), 40), {}, "missing a required argument: 'alpha'"),
        ((torch.zeros(40), 2**31, 1.0), {}, r"argument n must be an int in \[-2147483648, 2147483647\]"),
        ((torch.zeros(40), 40, "1.5"), {}, "argument 'alpha' must be a Python float, got str"),
        (
            (torch.zeros(40), 40, 1.0),
            {"BLOCK": [16]},
            "constexpr argument 'BLOCK' must be hashable, got list",
        ),
        ((torch.zeros(40), 40, 1.0), {"WIDTH": 2}, "got an unexpected keyword argument 'WIDTH'"),
        ((torch.zeros(40, device="meta"), 40, 1.0), {}, r"different devices: \['cpu', 'meta'\]"),
    ],
)
def test_bad_arguments_after_a_cached_launch_are_refused_in_the_slow_paths_words(
    scale_add, arguments, keywords, message
):
    x, y = randn(40, 11), randn(40, 12)
    run(scale_add, x, y)
    keywords = {"BLOCK": 16, **keywords}
    with pytest.raises(tv.LaunchError, match=message):
        scale_add[(3,)](x, y, *arguments, **keywords)


def test_meta_tensors_alone_are_refused(scale_add):
    x = torch.zeros(40, device="meta")
    with pytest.raises(tv.LaunchError, match="tensors are on meta; tilevm runs kernels on CPU and CUDA"):
        scale_add[(3,)](x, x, x, 40, 1.0, BLOCK=16)


def test_a_callable_grid_gets_the_arguments_by_name(scale_add):
    x, y = randn(40, 13), randn(40, 14)
    out = torch.full_like(x, float("nan"))
    seen = []

    def grid(meta):
        seen.append(meta)
        return (tv.cdiv(meta["n"], meta["BLOCK"]),)

    for _ in range(2):  # the slow path, then the hot path
        scale_add[grid](x, y, out, 40, 2.0, BLOCK=16)
    torch.testing.assert_close(out, x * 2.0 + y)
    assert (
        all(meta["x"] is x and meta["out"] is out and meta["alpha"] == 2.0 for meta in seen)
        and len(seen) == 2
    )


def test_thread_ir_prints_in_its_own_instruction_set(scale_add):
    x = randn(40, 15)
    program = scale_add.thread_ir(x, x, x, 40, 1.0, BLOCK=16)
    assert parse(str(program), THREAD_IR) == program
