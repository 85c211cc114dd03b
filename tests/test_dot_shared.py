"""Dots read from shared memory (``tv.dot`` of two shared tiles, Tile IR's ``dot_shared``): the results of
the SIMT interpreter (the lowered program) and of the block-level reference executor against torch's
float64 product, for float16 and bfloat16, over warpgroups spread along the rows, the columns or both,
with a k loop whose last window is ragged (the copies read zeros past the end); the shared placement the
tensor cores need; and the errors. Inputs are small integers, so that every partial sum is exact."""

import pytest
import torch
from lowering import assert_same_bytes, run_both

import tilevm as tv
from tilevm.errors import CompilationError
from tilevm.ir import IRTypeError, SharedDot, parse
from tilevm.layout import LayoutError, Swizzle
from tilevm.layout.warpgroup import operand_form, warpgroup_accumulator
from tilevm.passes import CompileOptions, run_pipeline
from tilevm.passes.pipeline import TILE_PASSES


def shared_dot_kernel(num_warps: int):
    @tv.kernel(num_warps=num_warps)
    def shared_dot(
        x: tv.Tensor, w: tv.Tensor, y: tv.Tensor, M: tv.constexpr, N: tv.constexpr, BK: tv.constexpr
    ):
        # y[M, N] = x[M, K] @ w[N, K].T, both operands K-major in shared memory, k in windows of BK
        xs = tv.shared_tensor(x.dtype, [M, BK])
        ws = tv.shared_tensor(x.dtype, [N, BK])
        acc = tv.register_tensor(tv.float32, [M, N], init=0.0)
        for k0 in range(0, x.shape[1], BK):
            tv.copy_async(xs, x, offsets=[0, k0])
            tv.copy_async(ws, w, offsets=[0, k0])
            tv.copy_async_commit()
            tv.copy_async_wait(0)
            tv.sync()
            acc = tv.dot(xs, tv.permute(ws, [1, 0]), acc)
            tv.sync()
        tv.store_global(y, acc, offsets=[0, 0])

    return shared_dot


CASES = [
    # (dtype, num_warps, M, N, K, BK): warpgroups along the rows, along the columns, a tile repeated per
    # warpgroup (n over 256), rows of 32 and 64 bytes, and a ragged last window of k
    (torch.float16, 4, 64, 64, 64, 64),
    (torch.float16, 8, 128, 128, 200, 64),
    (torch.bfloat16, 8, 64, 96, 48, 16),
    (torch.float16, 4, 64, 512, 96, 32),
    (torch.bfloat16, 8, 192, 48, 80, 32),
]


@pytest.mark.parametrize(("dtype", "num_warps", "m", "n", "k", "block_k"), CASES)
def test_shared_dot_matches_the_float64_product(dtype, num_warps, m, n, k, block_k):
    generator = torch.Generator().manual_seed(m * 7 + n * 3 + k)
    x = torch.randint(-4, 5, (m, k), generator=generator).to(dtype)
    w = torch.randint(-4, 5, (n, k), generator=generator).to(dtype)
    y = torch.full((m, n), float("nan"))
    kernel = shared_dot_kernel(num_warps)
    reference, lowered = run_both(kernel, (1,), x, w, y, M=m, N=n, BK=block_k)
    assert_same_bytes(reference, lowered)
    torch.testing.assert_close(lowered[2].double(), x.double() @ w.double().T, rtol=0, atol=0)


def test_operands_get_the_tensor_cores_placement():
    x, w, y = torch.ones(128, 64).half(), torch.ones(96, 64).half(), torch.zeros(128, 96)
    program = shared_dot_kernel(8).ir(x, w, y, M=128, N=96, BK=32)
    allocations = [item for item in program.body if type(item).__name__ == "AllocShared"]
    swizzles = [allocation.output.type.layout.swizzling for allocation in allocations]
    assert swizzles == [Swizzle(2, 3, 3), Swizzle(2, 3, 3)]  # rows of 64 bytes
    dot = next(item for body in _bodies(program.body) for item in body if isinstance(item, SharedDot))
    assert dot.output.type.layout == warpgroup_accumulator(128, 96, num_warps=8)
    for operand, k_dim in ((dot.a, 1), (dot.b, 0)):
        assert operand_form(operand.type.layout, k_dim, 16) is not None


def _bodies(body):
    yield body
    for item in body:
        for nested in ("body", "then_body", "else_body"):
            if isinstance(getattr(item, nested, None), tuple):
                yield from _bodies(getattr(item, nested))


def test_a_dot_needs_both_operands_in_shared_memory():
    @tv.kernel(num_warps=4)
    def mixed(x: tv.Tensor, y: tv.Tensor):
        xs = tv.shared_tensor(tv.float16, [64, 16])
        b = tv.load_global(x, offsets=[0, 0], shape=[16, 8])
        acc = tv.register_tensor(tv.float32, [64, 8], init=0.0)
        tv.store_global(y, tv.dot(xs, b, acc), offsets=[0, 0])

    with pytest.raises(CompilationError, match="shared memory or neither; b is in registers"):
        mixed.ir(torch.ones(16, 8).half(), torch.zeros(64, 8))


def test_a_dot_from_shared_memory_needs_warpgroups():
    x, w, y = torch.ones(64, 16).half(), torch.ones(8, 16).half(), torch.zeros(64, 8)
    with pytest.raises(CompilationError, match="warpgroups of 4 warps; the kernel has 2 warps"):
        shared_dot_kernel(2).ir(x, w, y, M=64, N=8, BK=16)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ("[32, 16], [16, 8], [32, 8]", "m a multiple of 64"),
        ("[64, 16], [16, 12], [64, 12]", "n of 8"),
        ("[64, 16], [16, 8], [64, 16]", "shapes do not match"),
    ],
)
def test_shapes_the_warpgroup_instruction_does_not_take_are_refused(shapes, message):
    a, b, c = (f"[{part}]" for part in shapes.split("], ["))
    a, c = a.replace("[[", "["), c.replace("]]", "]")
    text = f"""kernel k() num_threads=128 {{
  %a: shared<float16, {a}> = alloc_shared(dtype=float16, shape={a})
  %b: shared<float16, {b}> = alloc_shared(dtype=float16, shape={b})
  %c: register<float32, {c}> = alloc_register(dtype=float32, shape={c}, init=0.0)
  %d: register<float32, {c}> = dot_shared(a=%a, b=%b, accumulator=%c)
}}"""
    with pytest.raises((IRTypeError, CompilationError), match=message):
        run_pipeline(parse(text), CompileOptions(verify_passes=True), TILE_PASSES)


@pytest.mark.parametrize(
    ("m", "n", "num_warps"), [(128, 64, 8), (64, 512, 4), (192, 48, 8), (128, 256, 16), (64, 1024, 8)]
)
def test_accumulator_layout_is_the_warpgroup_fragment(m, n, num_warps):
    """Each thread's register ``4 j + i`` of instruction ``(r, c)`` is the element the PTX ISA's wgmma
    ``.m64nNk16`` D fragment gives: warp ``w % 4`` rows ``16 (w % 4) + lane / 4 (+ 8)``, atom ``j`` columns
    ``8 j + 2 (lane % 4) (+ 1)``, offset by the warpgroup's place and the instruction's repeat."""
    layout = warpgroup_accumulator(m, n, num_warps)
    table = layout.table()
    groups = num_warps // 4
    row_groups = max(g for g in range(1, groups + 1) if groups % g == 0 and (m // 64) % g == 0)
    column_groups = groups // row_groups
    per_group = n // column_groups
    columns = next(c for c in range(min(per_group, 256), 0, -8) if per_group % c == 0)  # an instruction's
    column_repeats = per_group // columns
    for thread in range(num_warps * 32):
        group, warp, lane = thread // 128, thread // 32 % 4, thread % 32
        group_row, group_column = divmod(group, column_groups)
        for slot in range(layout.local_size):
            instruction, register = divmod(slot, columns // 2)
            repeat_row, repeat_column = divmod(instruction, column_repeats)
            atom, element = divmod(register, 4)
            row = (repeat_row * row_groups + group_row) * 64 + 16 * warp + lane // 4 + 8 * (element // 2)
            column = (repeat_column * column_groups + group_column) * columns + 8 * atom
            column += 2 * (lane % 4) + element % 2
            assert tuple(table[thread, slot]) == (row, column), (thread, slot)


def test_warpgroup_layouts_refuse_partial_warpgroups():
    with pytest.raises(LayoutError, match="whole warpgroups"):
        warpgroup_accumulator(64, 64, num_warps=6)
