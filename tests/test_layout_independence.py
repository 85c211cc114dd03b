"""A program means the same with layouts as without: every example kernel and the executor tests' programs
run again with random valid layouts on every register tile, and must leave the same bits in memory."""

import inspect
import pathlib

import numpy as np
import pytest
import torch
from examples_on_cpu import run_example_on_cpu
from layout_assignment import RULES, assign_random_layouts, execute_with_random_layouts, launch_through

import tilevm as tv
from tilevm import ir
from tilevm.ir.rewrite import walk_instructions
from tilevm.layout import column_spatial, spatial

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


def test_every_instruction_has_a_layout_rule():
    assert set(RULES) == set(ir.INSTRUCTION_CLASSES)


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_kernels_compute_the_same_with_random_layouts(path, monkeypatch, capsys):
    launched = []

    def execute_both(program, arguments, grid, seed=0):
        launched.append(program)
        execute_with_random_layouts(program, arguments, grid, seed=len(launched))

    launch_through(monkeypatch, execute_both)
    run_example_on_cpu(path, monkeypatch)
    assert launched and "match" in capsys.readouterr().out


def register_tiles(body):
    for instruction in walk_instructions(body):
        output = getattr(instruction, "output", None)
        if (
            output is not None
            and isinstance(output.type, ir.TileType)
            and output.type.scope is ir.Scope.REGISTER
        ):
            yield output


@pytest.mark.parametrize("seed", range(4))
def test_every_register_tile_gets_a_layout_and_pinned_layouts_stay(seed):
    @tv.kernel(num_warps=2)
    def scaled_bytes(x: tv.Tensor[tv.uint8, 2], out: tv.Tensor[tv.int4, 2]):
        tile = tv.load_global(x, offsets=[0, 0], shape=[16, 8], layout=PINNED)
        for _ in range(2):
            tile = tile + tv.max(tile, 1, keepdim=True)
        tv.store_global(out, tv.view(tile, tv.int4), offsets=[0, 0])

    data = torch.randint(0, 256, (16, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    program = scaled_bytes.ir(data, torch.zeros(16, 8, dtype=torch.uint8))
    laid_out = ir.verify(assign_random_layouts(program, np.random.default_rng(seed)))
    tiles = list(register_tiles(laid_out.body))
    assert tiles and all(tile.type.layout is not None for tile in tiles)
    assert tiles[0].type.layout == PINNED  # the loaded tile keeps the layout the kernel gave it


PINNED = spatial(16, 4).local(1, 2)


def test_convert_layout_moves_a_tile_and_keeps_its_values():
    @tv.kernel(num_warps=1)
    def transpose_layout(x: tv.Tensor[tv.float16, 2], out: tv.Tensor[tv.float16, 2]):
        tile = tv.load_global(x, offsets=[0, 0], shape=[8, 4], layout=spatial(8, 4))
        moved = tv.convert_layout(tile, column_spatial(4, 8).permute(1, 0))
        tv.store_global(out, moved, offsets=[0, 0])

    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1)).half()
    out = torch.zeros_like(x)
    transpose_layout[(1,)](x, out)
    assert torch.equal(out, x)
    program = transpose_layout.ir(x, out)
    convert = next(i for i in program.body if isinstance(i, ir.ConvertLayout))
    assert convert.output.type.layout == column_spatial(4, 8).permute(1, 0)


def test_convert_layout_needs_a_register_layout():
    @tv.kernel(num_warps=1)
    def bad(x: tv.Tensor[tv.float16, 1]):
        tile = tv.load_global(x, offsets=[0], shape=[32])
        tv.store_global(x, tv.convert_layout(tile, "spatial(32)"), offsets=[0])  # marker

    with pytest.raises(tv.CompilationError) as caught:
        bad.ir(torch.zeros(32).half())
    assert (
        "convert_layout's layout must be a register layout, got the Python str 'spatial(32)'"
        in caught.value.message
    )
    lines, first = inspect.getsourcelines(bad.function)
    assert caught.value.location.line == first + next(i for i, text in enumerate(lines) if "marker" in text)


def test_a_pinned_view_layout_must_keep_each_threads_bits():
    @tv.kernel(num_warps=1)
    def unpack(packed: tv.Tensor[tv.uint8, 2], out: tv.Tensor[tv.int4, 2]):
        tile = tv.load_global(packed, offsets=[0, 0], shape=[8, 16], layout=spatial(8, 4).local(1, 4))
        nibbles = tv.view(tile, tv.int4, layout=spatial(8, 4).local(1, 8))
        repacked = tv.view(nibbles, tv.uint8, layout=spatial(4, 8).local(2, 2))  # marker
        tv.store_global(out, repacked, offsets=[0, 0])

    with pytest.raises(tv.CompilationError) as caught:
        unpack.ir(torch.zeros(8, 16, dtype=torch.uint8), torch.zeros(8, 16, dtype=torch.uint8))
    assert caught.value.message == (
        "a view from spatial(8, 4).local(1, 8) to spatial(4, 8).local(2, 2) moves bits between threads or "
        "slots; spatial(8, 4).local(1, 4) would keep them"
    )
    lines, first = inspect.getsourcelines(unpack.function)
    assert caught.value.location.line == first + next(i for i, text in enumerate(lines) if "marker" in text)
