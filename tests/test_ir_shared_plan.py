"""The verifier's rules for planned shared memory: each broken once, with its message and line asserted."""

import dataclasses

import pytest

from tilevm.dtypes import boolean, float16, float32, int32, uint4
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import AllocShared, BinaryExpr, Const, FreeShared, ProgramBuilder, SliceShared, verify
from tilevm.layout import SharedLayout

BAD_LINE = SourceLocation("kernel.py", 30, 4)


def plan(build, shared_bytes):
    """The program ``build(builder)`` emits, with the program's shared bytes set."""
    builder = ProgramBuilder("plan", num_threads=32)
    build(builder)
    return dataclasses.replace(builder.build(), shared_bytes=shared_bytes)


def allocate(builder, name, offset, shape=(64,), dtype=float16, layout=None, at=None):
    """An allocation of ``shape`` at byte ``offset``; ``at`` gives it a source line."""
    builder.location = at
    tile = builder.emit_output(AllocShared, name, layout, dtype=dtype, shape=shape, offset=offset)
    builder.location = None
    return tile


def plan_error(program) -> str:
    with pytest.raises(CompilationError) as caught:
        verify(program)
    assert caught.value.location == BAD_LINE
    return caught.value.message


def test_footprints_count_padding_and_pack_sub_byte_elements():
    builder = ProgramBuilder("sizes", num_threads=32)
    padded = SharedLayout((16, 32), (40, 1))  # rows padded to 40 elements: 15 * 40 + 32 elements
    cases = [
        (allocate(builder, "nibbles", 0, (16, 33), uint4), 16 * 33 // 2),
        (allocate(builder, "odd", 0, (3,), uint4), 2),  # 12 bits need 2 bytes
        (allocate(builder, "padded", 0, (16, 32), float32, padded), (15 * 40 + 32) * 4),
        (allocate(builder, "flags", 0, (10,), boolean), 2),  # bools are 1 bit: 10 bits need 2 bytes
    ]
    allocations = {instruction.output.uid: instruction for instruction in builder.bodies[0]}
    for tile, expected in cases:
        assert allocations[tile.uid].footprint_bytes() == expected, tile.name


def test_a_valid_plan_reuses_the_bytes_of_freed_and_finished_tiles():
    def build(builder):
        first = allocate(builder, "first", 0, (128,))  # bytes [0, 256)
        allocate(builder, "kept", 256, (8, 8), float32)  # bytes [256, 512), live to the end
        builder.emit(FreeShared(tensor=first))
        with builder.for_range("i", Const(0), Const(4), Const(1)):
            loop_tile = allocate(builder, "in_loop", 0, (64,))  # [0, 128): first is freed
            allocate(builder, "unfreed", 128, (64,))  # [128, 256): lives to the end of the loop body
            builder.emit(FreeShared(tensor=loop_tile))
        allocate(builder, "after", 0, (128,))  # [0, 256): both loop tiles are gone

    program = plan(build, 512)
    assert verify(program) is program


def test_every_allocation_needs_an_offset_once_one_has():
    def build(builder):
        allocate(builder, "a", 0)
        allocate(builder, "b", None, at=BAD_LINE)

    message = plan_error(plan(build, 1024))
    assert message == "alloc_shared: b has no offset, but the program's shared memory is planned"


def test_planned_offsets_need_the_programs_shared_bytes():
    message = plan_error(plan(lambda builder: allocate(builder, "a", 0, at=BAD_LINE), None))
    assert message == "alloc_shared: a has a planned offset, but the program has no shared_bytes"


def test_offsets_are_aligned_to_16_bytes():
    def build(builder):
        allocate(builder, "a", 0, (4,))
        allocate(builder, "b", 8, (4,), at=BAD_LINE)  # bytes [8, 16): apart from a, but misaligned

    message = plan_error(plan(build, 1024))
    assert message == "alloc_shared: offset 8 of b is not a non-negative multiple of 16"


def test_allocations_fit_in_the_shared_bytes():
    def build(builder):
        allocate(builder, "a", 0, (64,))
        allocate(
            builder, "b", 128, (32, 8), float16, SharedLayout.row_major(32, 8).swizzle(3, 3, 3), BAD_LINE
        )

    message = plan_error(plan(build, 600))
    assert message == "alloc_shared: b spans bytes [128, 640), past shared_bytes 600"


def test_live_allocations_do_not_overlap():
    def build(builder):
        allocate(builder, "a", 0, (64,))  # [0, 128)
        allocate(builder, "b", 64 + 32, (16,), at=BAD_LINE)

    message = plan_error(plan(build, 1024))
    assert message == "alloc_shared: b at bytes [96, 128) overlaps a at bytes [0, 128), which is live here"


def test_a_tile_allocated_before_a_loop_is_live_in_its_body():
    def build(builder):
        outer = allocate(builder, "outer", 0, (64,))
        with builder.for_range("i", Const(0), Const(2), Const(1)):
            allocate(builder, "inner", 64, (64,), at=BAD_LINE)
        builder.emit(FreeShared(tensor=outer))

    message = plan_error(plan(build, 1024))
    assert (
        message
        == "alloc_shared: inner at bytes [64, 192) overlaps outer at bytes [0, 128), which is live here"
    )


def test_a_free_in_a_branch_or_of_a_slice_does_not_end_the_allocation():
    def build(builder):
        tile = allocate(builder, "tile", 0, (64,))
        half = builder.emit_output(
            SliceShared, "half", tensor=tile, offsets=(Const(0),), shape=(32,), dims=(0,)
        )
        builder.emit(FreeShared(tensor=half))
        with builder.if_then(BinaryExpr("lt", Const(0), Const(1, int32))):
            builder.emit(FreeShared(tensor=tile))
        allocate(builder, "next", 0, (64,), at=BAD_LINE)

    message = plan_error(plan(build, 1024))
    assert (
        message == "alloc_shared: next at bytes [0, 128) overlaps tile at bytes [0, 128), which is live here"
    )


def test_shared_bytes_are_not_negative():
    with pytest.raises(CompilationError, match="shared_bytes must be non-negative, got -1") as caught:
        verify(plan(lambda builder: None, -1))
    assert caught.value.location is None
