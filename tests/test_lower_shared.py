"""The Thread IR of shared loads and stores, read FileCheck style: the vector width each layout allows, the
replicas that stay quiet, sub-byte elements, ``sync``, and the errors at the user's line.

Which instructions appear is checked here; what they compute is checked end to end (reference executor
against the SIMT interpreter) in ``test_lower_shared_run.py`` and, for the matmul, by replaying the
addresses in ``test_lower_shared_matmul.py``.
"""

import pytest

from tilevm.dtypes import float16, float32, int3, int4
from tilevm.errors import SourceLocation
from tilevm.ir import (
    AllocRegister,
    AllocShared,
    BinaryExpr,
    Const,
    LoadShared,
    ProgramBuilder,
    SliceShared,
    StoreShared,
    Sync,
    print_program,
    verify,
)
from tilevm.ir.thread import THREAD_IR
from tilevm.layout import local, spatial
from tilevm.passes.filecheck import filecheck
from tilevm.passes.lower import LoweringError, lower_to_threads
from tilevm.passes.plan_shared_memory import plan_shared_memory

USER_LINE = SourceLocation("kernel.py", 12, 4)


def round_trip(store_layout, load_layout, init, dtype=float16, shape=(16, 32)):
    """The Thread IR of: a register tile stored into a shared tile, a sync, the tile loaded back."""
    builder = ProgramBuilder("shared", num_threads=store_layout.num_threads)
    tile = builder.emit_output(AllocShared, "tile", dtype=dtype, shape=shape)
    value = builder.emit_output(AllocRegister, "value", store_layout, dtype=dtype, shape=shape, init=init)
    builder.location = USER_LINE
    builder.emit(StoreShared(tensor=tile, value=value))
    builder.emit(Sync())
    builder.emit_output(LoadShared, "loaded", load_layout, tensor=tile)
    builder.location = None
    return lowered(builder.build())


def lowered(program):
    return print_program(verify(lower_to_threads(verify(plan_shared_memory(program))), THREAD_IR), THREAD_IR)


def test_16_byte_runs_move_in_16_byte_vectors():
    text = round_trip(spatial(16, 4).local(1, 8), spatial(16, 4).local(1, 8), init=Const(1.5, float16))
    filecheck(
        text,
        """
        CHECK: store(pointer=shared_pointer<float16>(%S * 2), value=%V)
        CHECK-NEXT: barrier()
        CHECK: %L: vector<float16, 8> = load(pointer=shared_pointer<float16>(%T * 2), width=16)
        CHECK-NOT: load(
        """,
    )


def test_a_run_split_by_alignment_moves_in_smaller_vectors():
    # rows of 3 x 4 halves, each thread's 12 bytes start 8-byte aligned only every other thread
    text = round_trip(
        spatial(16, 4).local(1, 6), spatial(16, 4).local(1, 6), shape=(16, 24), init=Const(1.5, float16)
    )
    assert text.count("width=4)") == 3 and "width=8" not in text and "width=16" not in text


def test_elements_in_different_rows_move_one_at_a_time():
    text = round_trip(
        spatial(8, 8).column_local(2, 4), spatial(8, 8).column_local(2, 4), init=Const(1.5, float16)
    )
    assert text.count("width=2)") == 8
    filecheck(text, "CHECK: %P: vector<float16, 8> = let(value=pack([")


def test_replicas_do_not_store():
    replicated = spatial(16, 2).local(1, 16).replicated(2)
    text = round_trip(replicated, spatial(16, 4).local(1, 8), init=Const(1.5, float16))
    filecheck(
        text,
        """
        CHECK: %P: bool = let(value=(%tid % 2) == 0)
        CHECK: store(pointer=shared_pointer<float16>({{.*}}), value={{.*}}, predicate=%P)
        CHECK: store(pointer=shared_pointer<float16>({{.*}}), value={{.*}}, predicate=%P)
        CHECK-NOT: store(
        """,
    )


def test_sub_byte_elements_less_than_a_byte_per_thread_go_through_their_byte_and_word():
    one_each = spatial(8, 32)  # one int4 per thread: half a byte
    text = round_trip(one_each, one_each, dtype=int4, shape=(8, 32), init=Const(-3, int4))
    filecheck(
        text,
        """
        CHECK: atomic(op="and", pointer=shared_pointer<uint32>(
        CHECK: atomic(op="or", pointer=shared_pointer<uint32>(
        CHECK: barrier()
        CHECK: load(pointer=shared_pointer<uint8>(
        CHECK: element(bitcast<int4, 2>(
        """,
    )


def test_sub_byte_elements_of_whole_bytes_move_as_vectors():
    layout = spatial(8, 32).local(1, 4)  # 2 bytes per thread
    text = round_trip(layout, layout, dtype=int4, shape=(8, 128), init=Const(5, int4))
    filecheck(
        text,
        """
        CHECK: store(pointer=shared_pointer<int4>({{.*}}), value=%V)
        CHECK: load(pointer=shared_pointer<int4>({{.*}}), width=2)
        """,
    )
    assert "atomic" not in text


def test_elements_of_3_bits_are_not_addressed_and_the_error_names_the_line():
    with pytest.raises(LoweringError) as caught:
        round_trip(
            spatial(8, 4).local(1, 8),
            spatial(8, 4).local(1, 8),
            dtype=int3,
            shape=(8, 32),
            init=Const(1, int3),
        )
    assert caught.value.location == USER_LINE
    assert caught.value.message.startswith("store_shared of a int3 shared tile: lowering addresses shared")


def test_a_sub_byte_slice_at_a_runtime_offset_inside_a_byte_is_an_error_at_its_line():
    builder = ProgramBuilder("slices", num_threads=32)
    offset = builder.scalar_param("offset", Const(0).type.dtype)
    tile = builder.emit_output(AllocShared, "tile", dtype=int4, shape=(64,))
    builder.location = USER_LINE
    builder.emit_output(
        SliceShared,
        "part",
        tensor=tile,
        offsets=(BinaryExpr("add", offset, Const(1)),),
        shape=(8,),
        dims=(0,),
    )
    with pytest.raises(LoweringError) as caught:
        lowered(builder.build())
    assert caught.value.location == USER_LINE
    assert "not known to start a whole byte" in caught.value.message


def test_float32_pairs_move_as_8_byte_vectors():
    layout = local(2, 1).spatial(8, 4).local(1, 2)
    text = round_trip(layout, layout, dtype=float32, shape=(16, 8), init=Const(2.0, float32))
    assert text.count("width=8)") == 2
