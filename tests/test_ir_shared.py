"""Slices of shared tiles in the IR: the offset of every element, the layout their type carries, their text.

The reference for every element's offset is the parent's ``table()`` at the shifted coordinates, read one
element at a time; a slice's offsets come from its ``slice_layout`` shifted by its ``base_offset``, evaluated
for several runtime values.
"""

import numpy as np
import pytest

from tilevm.dtypes import float16, int32, int64, uint4
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import (
    AllocShared,
    BinaryExpr,
    Const,
    Program,
    ProgramBuilder,
    ScalarType,
    Scope,
    SliceShared,
    TileType,
    Var,
    parse,
    print_program,
    verify,
)
from tilevm.layout import SharedLayout, Swizzle, choose_swizzle
from tilevm.runtime.reference.scalars import evaluate_int
from tilevm.runtime.reference.state import BlockState

HERE = SourceLocation("kernel.py", 17, 4)


def emit_slice(builder, name, tensor, offsets, shape, dims):
    """A slice whose type carries the layout derived from its tensor's, as a layout pass would set it."""
    fields = {"tensor": tensor, "offsets": tuple(offsets), "shape": tuple(shape), "dims": tuple(dims)}
    parent = tensor.type.layout
    layout = None if parent is None else SliceShared(output=tensor, **fields).slice_layout(parent)
    return builder.emit_output(SliceShared, name, layout, **fields)


def definitions(program):
    """The instruction defining each variable, by the variable's uid (top-level body only)."""
    return {
        instruction.output.uid: instruction for instruction in program.body if hasattr(instruction, "output")
    }


def placement(variable, defined, scalars):
    """(layout, runtime base) of a shared tile, composing ``base_offset`` through nested slices."""
    instruction = defined[variable.uid]
    if isinstance(instruction, AllocShared):
        return instruction.placement(), 0
    parent_layout, parent_base = placement(instruction.tensor, defined, scalars)
    state = BlockState(block_index=(0, 0, 0), grid=(1, 1, 1), rng=np.random.default_rng(0), run=None)
    for scalar, value in scalars.items():
        state.bind(scalar, np.asarray(value))
    base_expr = instruction.base_offset(parent_layout, Const(parent_base))
    return instruction.slice_layout(parent_layout), evaluate_int(base_expr, state, "base")


def element_offsets(variable, defined, scalars):
    """The offset of every element of a shared tile as the IR defines it: layout shifted by the base."""
    layout, base = placement(variable, defined, scalars)
    return np.array([layout.shifted_by(base).offset(c) for c in np.ndindex(*layout.shape)]).reshape(
        layout.shape
    )


def reference_window(table, offsets, shape, dims):
    """The parent's offsets at ``offsets + c`` (``c`` placed along ``dims``), one element at a time."""
    window = np.empty(shape, dtype=np.int64)
    for coord in np.ndindex(*shape):
        full = list(offsets)
        for dim, value in zip(dims, coord):
            full[dim] += value
        window[coord] = table[tuple(full)]
    return window


def swizzled_program():
    """A [32, 64] f16 tile with the 128-byte swizzle and a [3, 64, 32] staged tile, sliced at runtime."""
    builder = ProgramBuilder("slices", num_threads=32)
    k = builder.scalar_param("k", int32)
    stage = builder.scalar_param("stage", int64)
    column = builder.scalar_param("column", int32)
    tile_layout = choose_swizzle((32, 64), 16, ("cp_async_16B_rows", "ldmatrix"))
    assert tile_layout.swizzling == Swizzle(3, 3, 3)
    tile = builder.emit_output(AllocShared, "tile", tile_layout, dtype=float16, shape=(32, 64))
    stages_layout = SharedLayout.row_major(3, 64, 32).swizzle(2, 3, 3)
    stages = builder.emit_output(AllocShared, "stages", stages_layout, dtype=float16, shape=(3, 64, 32))
    part = emit_slice(builder, "part", tile, (Const(0), BinaryExpr("mul", k, Const(16))), (32, 16), (0, 1))
    fixed = emit_slice(builder, "fixed", tile, (Const(8), Const(40)), (16, 16), (0, 1))
    buffer = emit_slice(builder, "buffer", stages, (stage, Const(0), Const(0)), (64, 32), (1, 2))
    inner = emit_slice(builder, "inner", buffer, (Const(16), column), (16, 8), (0, 1))
    row = emit_slice(builder, "row", part, (BinaryExpr("add", k, Const(3)), Const(8)), (8,), (1,))
    names = {"k": k, "stage": stage, "column": column}
    slices = {"part": part, "fixed": fixed, "buffer": buffer, "inner": inner, "row": row}
    return builder.build(), names, slices


@pytest.mark.parametrize(("k", "stage", "column"), [(0, 0, 0), (1, 2, 8), (3, 1, 24), (2, 2, 5)])
def test_every_element_of_a_slice_has_its_parents_offset(k, stage, column):
    program, names, slices = swizzled_program()
    defined = definitions(program)
    scalars = {names["k"]: k, names["stage"]: stage, names["column"]: column}
    tile_table = program.body[0].output.type.layout.table()
    stages_table = program.body[1].output.type.layout.table()
    expected = {
        "part": reference_window(tile_table, (0, 16 * k), (32, 16), (0, 1)),
        "fixed": reference_window(tile_table, (8, 40), (16, 16), (0, 1)),
        "buffer": reference_window(stages_table, (stage, 0, 0), (64, 32), (1, 2)),
        "inner": reference_window(stages_table, (stage, 16, column), (16, 8), (1, 2)),
        "row": reference_window(tile_table, (k + 3, 16 * k + 8), (8,), (1,)),
    }
    for name, variable in slices.items():
        np.testing.assert_array_equal(
            element_offsets(variable, defined, scalars), expected[name], err_msg=name
        )


def test_the_type_carries_the_static_part_and_the_base_the_runtime_part():
    program, names, slices = swizzled_program()
    verify(program)
    k, stage = names["k"], names["stage"]
    # The column block's layout is the window at column 0; 16 * k is added before the swizzle.
    assert str(slices["part"].type.layout) == "shared((32, 16), strides=(64, 1)).swizzle(3, 3, 3)"
    # Constant offsets are in the origin, and such a slice of an allocation has no runtime base.
    assert (
        str(slices["fixed"].type.layout) == "shared((16, 16), strides=(64, 1), origin=552).swizzle(3, 3, 3)"
    )
    defined = definitions(program)
    assert defined[slices["fixed"].uid].base_offset(program.body[0].output.type.layout, Const(0)) == Const(0)
    # An int64 offset is cast to int32 and scaled by its stride.
    stages_layout = program.body[1].output.type.layout
    base = defined[slices["buffer"].uid].base_offset(stages_layout, Const(0))
    assert base.op == "mul" and base.rhs == Const(2048)
    assert base.lhs.operand is stage and base.lhs.dtype == int32
    part_base = defined[slices["part"].uid].base_offset(program.body[0].output.type.layout, Const(0))
    assert part_base == BinaryExpr("mul", k, Const(16))


def test_slices_and_planned_offsets_round_trip_through_text():
    program, _, _ = swizzled_program()
    builder = ProgramBuilder("planned", num_threads=64)
    tile = builder.emit_output(AllocShared, "tile", dtype=uint4, shape=(16, 64), offset=4096)
    emit_slice(builder, "half", tile, (Const(0), Const(32)), (16, 32), (0, 1))
    planned = Program("planned", (), 64, tuple(builder.bodies[0]), shared_bytes=8192)
    for original in (program, planned):
        text = print_program(original)
        assert parse(text) == original
        assert print_program(parse(text)) == text
    text = print_program(planned)
    assert text.startswith("kernel planned() num_threads=64 shared_bytes=8192 {\n")
    assert "alloc_shared(dtype=uint4, shape=[16, 64], offset=4096)" in text
    assert "origin=" in print_program(program) and "offset=" not in print_program(program)
    assert parse(text.replace("offset=4096", "offset=0")) != planned
    assert parse(text.replace("shared_bytes=8192", "shared_bytes=4096")) != planned


def shared_tile(name, shape, layout=None):
    return Var(name, TileType(float16, shape, Scope.SHARED, layout))


def verifier_error(*body):
    with pytest.raises(CompilationError) as caught:
        verify(Program("k", (), 32, tuple(body)))
    assert caught.value.location == HERE
    return caught.value.message


def test_a_slice_must_carry_the_layout_derived_from_its_tensor():
    layout = SharedLayout.row_major(32, 64).swizzle(3, 3, 3)
    tile = shared_tile("tile", (32, 64), layout)
    allocate = AllocShared(output=tile, dtype=float16, shape=(32, 64))
    window = {"tensor": tile, "offsets": (Const(0), Const(16)), "shape": (32, 16), "dims": (0, 1)}
    # The window's own row-major layout swizzled: offsets moved after the swizzle, which is wrong here.
    moved = shared_tile("part", (32, 16), SharedLayout((32, 16), (64, 1), Swizzle(3, 3, 3)))
    message = verifier_error(allocate, SliceShared(output=moved, loc=HERE, **window))
    assert message == (
        "slice_shared: the slice's layout must be "
        "shared((32, 16), strides=(64, 1), origin=16).swizzle(3, 3, 3), the window of "
        "shared((32, 64), strides=(64, 1)).swizzle(3, 3, 3); "
        "got shared((32, 16), strides=(64, 1)).swizzle(3, 3, 3)"
    )
    plain = shared_tile("plain", (32, 64))
    laid_out = shared_tile("part", (32, 16), SharedLayout.row_major(32, 16))
    window["tensor"] = plain
    message = verifier_error(
        AllocShared(output=plain, dtype=float16, shape=(32, 64)),
        SliceShared(output=laid_out, loc=HERE, **window),
    )
    assert message == (
        "slice_shared: a slice of a tensor without a layout has none, got shared((32, 16), strides=(16, 1))"
    )


def test_an_allocation_layout_starts_at_its_first_element():
    layout = SharedLayout.row_major(8, 8).shifted_by(8)
    message = verifier_error(
        AllocShared(output=shared_tile("t", (8, 8), layout), dtype=float16, shape=(8, 8), loc=HERE)
    )
    assert message == (
        "alloc_shared: an allocation's layout starts at its first element (origin 0), got "
        "shared((8, 8), strides=(8, 1), origin=8)"
    )


def test_a_constant_slice_offset_must_lie_inside_the_tensor():
    tile = shared_tile("tile", (4, 64))
    fields = {"tensor": tile, "offsets": (Const(2), Const(56)), "shape": (16,), "dims": (1,)}
    message = verifier_error(
        AllocShared(output=tile, dtype=float16, shape=(4, 64)),
        SliceShared(output=shared_tile("part", (16,)), loc=HERE, **fields),
    )
    assert message == "slice_shared: slice offset 56 with extent 16 is outside dimension 1 of size 64"
    k = Var("k", ScalarType(int32))
    assert SliceShared(output=tile, **{**fields, "offsets": (Const(2), k)}).result_type().shape == (16,)
