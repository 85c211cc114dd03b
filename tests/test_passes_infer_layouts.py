"""``infer_layouts``: the layouts it chooses for small kernels (written out here from the rules: 16 bytes a
thread along the last dim for global loads, the mma fragments for dots, the operand with the most bits for
elementwise results), and on every example kernel a verified program that computes the same bits."""

import inspect
import pathlib

import pytest
import torch
from examples_on_cpu import run_example_on_cpu
from layout_assignment import execute_with_layouts, launch_through
from test_layout_independence import register_tiles

import tilevm as tv
from tilevm import ir
from tilevm.ir.rewrite import walk_instructions
from tilevm.layout import dot_atom, parse, spatial
from tilevm.passes.filecheck import filecheck
from tilevm.passes.infer_layouts import infer_layouts

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


def inferred(kernel, *arguments):
    return ir.verify(infer_layouts(kernel.ir(*arguments)))


def launch_with_inferred_layouts(monkeypatch, kernel, *arguments):
    """Launch ``kernel`` on one block, checking that its program computes the same bits with inferred
    layouts; return the laid-out program."""
    laid_out = []

    def execute_both(program, arguments, grid, seed=0):
        laid_out.append(execute_with_layouts(program, infer_layouts, arguments, grid, seed))

    launch_through(monkeypatch, execute_both)
    kernel[(1,)](*arguments)
    return laid_out[0]


def test_a_load_cast_store_chain_moves_16_bytes_a_thread_and_the_cast_keeps_the_layout():
    @tv.kernel(num_warps=4)
    def widen(x: tv.Tensor[tv.float16, 2], out: tv.Tensor[tv.float32, 2]):
        tile = tv.load_global(x, offsets=[0, 0], shape=[64, 64])
        tv.store_global(out, tv.cast(tile, tv.float32), offsets=[0, 0])

    program = inferred(widen, torch.zeros(64, 64).half(), torch.zeros(64, 64))
    # 8 halves a thread along a row, 8 threads a row, 16 rows at once over 128 threads, 4 times
    filecheck(
        ir.print_program(program),
        """
        CHECK: %TILE: register<float16, [64, 64], local(4, 1).spatial(16, 8).local(1, 8)> = load_global(
        CHECK-NEXT: register<float32, [64, 64], local(4, 1).spatial(16, 8).local(1, 8)> = cast(operand=%TILE
        CHECK-NEXT: store_global(
        """,
    )


def test_a_load_from_a_transposed_tensor_moves_16_bytes_a_thread_down_its_columns(monkeypatch):
    @tv.kernel(num_warps=1)
    def copy(x: tv.Tensor[tv.float16, 2], out: tv.Tensor[tv.float16, 2]):
        tv.store_global(out, tv.load_global(x, offsets=[0, 0], shape=[64, 8]), offsets=[0, 0])

    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(3)).half().t()  # strides (1, 64)
    out = torch.zeros(64, 8).half()
    laid_out = launch_with_inferred_layouts(monkeypatch, copy, x, out)
    assert torch.equal(out, x)
    # 8 halves of a column a thread, 8 threads down a column, 4 columns at once, twice
    filecheck(
        ir.print_program(laid_out),
        "CHECK: register<float16, [64, 8], local(1, 2).column_spatial(8, 4).local(8, 1)> = load_global(",
    )


def test_a_small_tile_replicates_over_the_threads_left():
    @tv.kernel(num_warps=1)
    def copy(x: tv.Tensor[tv.int8, 2], out: tv.Tensor[tv.int8, 2]):
        tv.store_global(out, tv.load_global(x, offsets=[0, 0], shape=[4, 16]), offsets=[0, 0])

    program = inferred(copy, torch.zeros(4, 16, dtype=torch.int8), torch.zeros(4, 16, dtype=torch.int8))
    # a row of 16 bytes is one thread's; 4 rows keep 4 threads, the other 28 hold copies
    filecheck(
        ir.print_program(program), "CHECK: register<int8, [4, 16], replicated(8).spatial(4, 1).local(1, 16)>"
    )


def test_a_view_of_bytes_as_nibbles_keeps_each_threads_bits():
    @tv.kernel(num_warps=1)
    def unpack(packed: tv.Tensor[tv.uint8, 2], out: tv.Tensor[tv.int4, 2]):
        tile = tv.load_global(packed, offsets=[0, 0], shape=[16, 16])
        tv.store_global(out, tv.view(tile, tv.int4), offsets=[0, 0])

    packed = torch.zeros(16, 16, dtype=torch.uint8)
    program = inferred(unpack, packed, packed.clone())
    # the 16 bytes of a row are the 32 nibbles of the same row, in the same thread
    filecheck(
        ir.print_program(program),
        """
        CHECK: %TILE: register<uint8, [16, 16], replicated(2).spatial(16, 1).local(1, 16)> = load_global(
        CHECK-NOT: convert_layout
        CHECK: register<int4, [16, 32], replicated(2).spatial(16, 1).local(1, 32)> = view(operand=%TILE
        """,
    )


def test_a_dot_uses_the_mma_fragments_and_its_accumulator_is_made_in_them():
    @tv.kernel(num_warps=4)
    def matmul(a: tv.Tensor[tv.float16, 2], b: tv.Tensor[tv.float16, 2], c: tv.Tensor[tv.float32, 2]):
        accumulator = tv.register_tensor(tv.float32, [32, 16], init=0.0)
        for _ in range(2):
            a_tile = tv.load_global(a, offsets=[0, 0], shape=[32, 16])
            b_tile = tv.load_global(b, offsets=[0, 0], shape=[16, 16])
            accumulator = tv.dot(a_tile, b_tile, accumulator)
        tv.store_global(c, accumulator, offsets=[0, 0])

    program = inferred(matmul, torch.zeros(32, 16).half(), torch.zeros(16, 16).half(), torch.zeros(32, 16))
    # m16n8k16 atoms, 2 x 2 of them over the 4 warps; the loads keep their 16-byte layouts (too few elements
    # for all threads: replicated) and are converted
    fragment = "local(2, 1).spatial(8, 4).local(1, 2)"
    filecheck(
        ir.print_program(program),
        f"""
        CHECK: %ACC: register<float32, [32, 16], spatial(2, 2).{fragment}> = alloc_register(
        CHECK: %A: register<float16, [32, 16], replicated(2).spatial(32, 2).local(1, 8)> = load_global(
        CHECK: %B: register<float16, [16, 16], replicated(4).spatial(16, 2).local(1, 8)> = load_global(
        CHECK: %A2: {{{{.*}}}} = convert_layout(operand=%A)
        CHECK-NEXT: %B2: {{{{.*}}}} = convert_layout(operand=%B)
        CHECK-NEXT: register<float32, [32, 16], spatial(2, 2).{fragment}> = dot(
        CHECK-SAME: a=%A2, b=%B2, accumulator=%ACC)
        CHECK-NOT: convert_layout
        """,
    )
    dot = next(i for i in walk_instructions(program.body) if isinstance(i, ir.Dot))
    layouts = dot.a.type.layout, dot.b.type.layout, dot.accumulator.type.layout
    assert dot_atom(*layouts, "float16") == "m16n8k16"


def test_a_dot_reads_an_operand_whose_atoms_come_in_another_order_where_it_is(monkeypatch):
    # b is pinned with its two n8 atoms slower than its two k16 atoms (the chooser puts k first): it still
    # fits the m16n8k16 atom with the accumulator, so the dot reads it with no convert_layout
    fragments = tv.layout.mma_fragments("m16n8k16", "f16")
    b_layout = tv.layout.local(1, 2) * tv.layout.local(2, 1) * fragments.b

    @tv.kernel(num_warps=1)
    def matmul(a: tv.Tensor[tv.float16, 2], b: tv.Tensor[tv.float16, 2], c: tv.Tensor[tv.float32, 2]):
        a_tile = tv.load_global(a, offsets=[0, 0], shape=[16, 32])
        b_tile = tv.load_global(b, offsets=[0, 0], shape=[32, 16], layout=b_layout)
        accumulator = tv.register_tensor(tv.float32, [16, 16], init=0.0)
        tv.store_global(c, tv.dot(a_tile, b_tile, accumulator), offsets=[0, 0])

    generator = torch.Generator().manual_seed(7)
    a = torch.randint(-4, 5, (16, 32), generator=generator).half()
    b = torch.randint(-4, 5, (32, 16), generator=generator).half()
    c = torch.full((16, 16), float("nan"))
    program = launch_with_inferred_layouts(monkeypatch, matmul, a, b, c)
    filecheck(
        ir.print_program(program),
        f"""
        CHECK: %B: register<float16, [32, 16], {b_layout}> = load_global(
        CHECK-NOT: convert_layout(operand=%B)
        CHECK: dot(
        CHECK-SAME: b=%B,
        """,
    )
    matmul[(1,)](a, b, c)
    assert torch.equal(c, a.float() @ b.float())  # small integers: every sum exact


def test_a_reduction_and_its_broadcast_need_no_conversion():
    @tv.kernel(num_warps=1)
    def center(x: tv.Tensor[tv.float32, 2], out: tv.Tensor[tv.float32, 2]):
        values = tv.load_global(x, offsets=[0, 0], shape=[8, 64])
        tv.store_global(out, values - tv.max(values, dim=1, keepdim=True), offsets=[0, 0])

    program = inferred(center, torch.zeros(8, 64), torch.zeros(8, 64))
    # 4 floats a thread, 16 threads a row, 2 rows at once, 4 times; the row maximum is replicated over the
    # 16 threads of its row
    filecheck(
        ir.print_program(program),
        """
        CHECK: %V: register<float32, [8, 64], local(4, 1).spatial(2, 16).local(1, 4)> = load_global(
        CHECK-NEXT: %M: register<float32, [8, 1], local(4, 1).spatial(2, 1).replicated(16)> = reduce(
        CHECK-SAME: operand=%V
        CHECK-NEXT: register<float32, [8, 64], local(4, 1).spatial(2, 16).local(1, 4)> = binary(
        CHECK-SAME: op="sub", lhs=%V, rhs=%M)
        CHECK-NOT: convert_layout
        """,
    )


LAYOUT_A = spatial(16, 2).local(1, 8)
LAYOUT_B = spatial(2, 16).local(8, 1)


def test_two_pinned_layouts_meet_through_one_conversion_of_the_operand_with_fewer_bits():
    @tv.kernel(num_warps=1)
    def masked(mask: tv.Tensor[tv.uint8, 2], x: tv.Tensor[tv.float32, 2], out: tv.Tensor[tv.float32, 2]):
        keep = tv.load_global(mask, offsets=[0, 0], shape=[16, 16], layout=LAYOUT_A) > 0
        values = tv.load_global(x, offsets=[0, 0], shape=[16, 16], layout=LAYOUT_B)
        tv.store_global(out, tv.where(keep, values, 0.0), offsets=[0, 0])  # marker

    arguments = torch.zeros(16, 16, dtype=torch.uint8), torch.zeros(16, 16), torch.zeros(16, 16)
    program = inferred(masked, *arguments)
    text = ir.print_program(program)
    filecheck(
        text,
        f"""
        CHECK: %KEEP: register<bool, [16, 16], {LAYOUT_A}> = binary(
        CHECK: %VALUES: register<float32, [16, 16], {LAYOUT_B}> = load_global(
        CHECK-NEXT: %KEEP2: register<bool, [16, 16], {LAYOUT_B}> = convert_layout(operand=%KEEP)
        CHECK-NEXT: register<float32, [16, 16], {LAYOUT_B}> = where(condition=%KEEP2, on_true=%VALUES
        """,
    )
    assert text.count("convert_layout") == 1
    # the conversion is made for the where, on its line
    convert = next(i for i in program.body if isinstance(i, ir.ConvertLayout))
    lines, first = inspect.getsourcelines(masked.function)
    assert convert.loc.line == first + next(i for i, line in enumerate(lines) if "marker" in line)


def test_a_laid_out_program_is_left_as_it_is():
    @tv.kernel(num_warps=2)
    def scale(x: tv.Tensor[tv.float16, 1], out: tv.Tensor[tv.float16, 1]):
        values = tv.load_global(
            x, offsets=[0], shape=[128], layout=parse("spatial(16).replicated(4).local(8)")
        )
        tv.store_global(out, values * values + tv.cast(tv.arange(128), tv.float16), offsets=[0])

    program = inferred(scale, torch.zeros(128).half(), torch.zeros(128).half())
    assert infer_layouts(program) == program
    assert all(tile.type.layout is not None for tile in register_tiles(program.body))


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_kernels_verify_and_compute_the_same_bits_with_inferred_layouts(path, monkeypatch, capsys):
    laid_out = []

    def execute_both(program, arguments, grid, seed=0):
        laid_out.append(execute_with_layouts(program, infer_layouts, arguments, grid, seed))

    launch_through(monkeypatch, execute_both)
    run_example_on_cpu(path, monkeypatch)
    assert laid_out and "match" in capsys.readouterr().out
    for program in laid_out:
        assert all(tile.type.layout is not None for tile in register_tiles(program.body))
        if path.stem in ("matmul_fp16", "softmax", "vector_add"):
            # one anchor each (tiles loaded 16 bytes a thread, or the dot's fragments): nothing to convert
            assert not any(isinstance(i, ir.ConvertLayout) for i in walk_instructions(program.body))
