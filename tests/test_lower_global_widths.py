"""The widths of the global accesses that lowering emits, read from the Thread IR (FileCheck style): 16 bytes
a thread where the layout, the alignment and the bounds allow (the examples included), one element at a
time where they do not, the fallback of ragged tails, sub-byte groups inside a byte, one replica writing,
and the errors for what is not lowered.

Only the global-memory instructions are lowered here (``lower_memory``): every other instruction's result
is a stand-in register, so that these tests read the accesses whatever else lowering does yet.
"""

from __future__ import annotations

import pathlib
import runpy

import pytest
import torch
from lowering import assert_same_bytes, run_both

import tilevm as tv
from tilevm import dtypes
from tilevm.errors import CompilationError
from tilevm.ir import INSTRUCTION_CLASSES, Program, TileType, check_round_trip, print_program, verify
from tilevm.ir.expr import Const
from tilevm.ir.stmt import DeclareScalar
from tilevm.ir.thread import THREAD_IR
from tilevm.layout import RegisterLayout, local, spatial
from tilevm.passes.filecheck import filecheck
from tilevm.passes.lower import control, global_memory
from tilevm.passes.lower.lowering import Lowering, LoweringError, splat

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def _stand_in(lowering: Lowering, instruction) -> None:
    """A register tile defined by an instruction not lowered here becomes a register declared zero."""
    output = getattr(instruction, "output", None)
    if output is not None and isinstance(output.type, TileType):
        layout = output.type.layout
        if isinstance(layout, RegisterLayout):
            init = splat(Const(0, output.type.dtype), layout.local_size)
            lowering.bind(output, lowering.define(DeclareScalar, output.name, init=init))


HANDLERS = {
    **{cls: _stand_in for cls in INSTRUCTION_CLASSES},
    **control.HANDLERS,
    **global_memory.HANDLERS,
}


def lower_memory(program: Program) -> str:
    """The Thread IR text of the global accesses of ``program`` (Tile IR after the Tile IR passes, as
    ``Kernel.ir`` gives it), verified and round-tripped through its text."""
    thread_program = verify(Lowering(program, HANDLERS).lower_program(), THREAD_IR)
    check_round_trip(thread_program, THREAD_IR)
    return print_program(thread_program, THREAD_IR)


def example(name: str):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="example")[name]


@tv.kernel(num_warps=1)
def copy(source: tv.Tensor, destination: tv.Tensor, BM: tv.constexpr, BN: tv.constexpr, START: tv.constexpr):
    m = tv.block_idx() * BM
    tile = tv.load_global(source, offsets=[m, START], shape=[BM, BN])
    tv.store_global(destination, tile, offsets=[m, START])


# -- the examples


def test_vector_add_moves_16_bytes_and_falls_back_at_the_ragged_end():
    """1000 floats: the size is not known to be a multiple of 4, so each group of 4 is one 16-byte access
    when wholly in bounds, and 4 predicated 4-byte accesses otherwise. The offset (a block index times the
    block) is never negative: only the upper bound is checked."""
    a, b, out = (torch.zeros(1000) for _ in range(3))
    text = lower_memory(example("vector_add").ir(a, b, out, BLOCK=256))
    filecheck(
        text,
        """
        CHECK: %FULL: bool = let(value=(%I + 3) < %a_size0)
        CHECK: if %FULL {
        CHECK-NEXT: vector<float32, 4> = load(pointer=pointer_add(%a, %I * 4), width=16)
        CHECK: } else {
        CHECK: %IN: bool = let(value=%I < %a_size0)
        CHECK-NEXT: float32 = load(pointer=pointer_add(%a, %I * 4), width=4, predicate=%IN)
        CHECK: if
        CHECK-NEXT: vector<float32, 4> = load(pointer=pointer_add(%b, {{.*}}), width=16)
        CHECK: if
        CHECK-NEXT: store(pointer=pointer_add(%out, %J * 4), value={{.*}}, predicate=%WRITER)
        """,
    )


def test_vector_add_with_a_size_multiple_of_16_moves_16_bytes_without_a_fallback():
    a, b, out = (torch.zeros(1024) for _ in range(3))
    text = lower_memory(example("vector_add").ir(a, b, out, BLOCK=256))
    filecheck(
        text,
        """
        CHECK-NOT: if
        CHECK: vector<float32, 4> = load(pointer=pointer_add(%a, %I * 4), width=16, predicate=
        CHECK: vector<float32, 4> = load(pointer=pointer_add(%b, {{.*}}), width=16, predicate=
        CHECK: store(pointer=pointer_add(%out, %J * 4), value=
        CHECK-NOT: load(
        """,
    )


def test_softmax_moves_16_bytes_and_fills_minus_infinity():
    """Rows of 304 floats (a multiple of 16): every group of 4 is wholly in or out; -inf where out."""
    x = torch.zeros(37, 304)
    text = lower_memory(example("softmax").ir(x, torch.zeros_like(x), BLOCK=512))
    filecheck(
        text,
        """
        CHECK: %L: vector<float32, 4> = load(pointer=pointer_add(%x, %A * 4), width=16, predicate=%IN)
        CHECK-NEXT: select(%IN, %L, gather([-inf], [0, 0, 0, 0]))
        CHECK: store(pointer=pointer_add(%out, {{.*}} * 4), value=%V
        """,
    )
    assert "width=4" not in text


def test_layer_norm_moves_16_bytes_of_float16():
    x = torch.zeros(37, 304, dtype=torch.float16)
    weight, bias = torch.zeros(304, dtype=torch.float16), torch.zeros(304, dtype=torch.float16)
    text = lower_memory(example("layer_norm").ir(x, weight, bias, torch.zeros_like(x), 300, 1e-5, BLOCK=512))
    filecheck(
        text,
        """
        CHECK: vector<float16, 8> = load(pointer=pointer_add(%x, {{.*}} * 2), width=16, predicate=
        CHECK: vector<float16, 8> = load(pointer=pointer_add(%weight, {{.*}} * 2), width=16, predicate=
        CHECK: vector<float16, 8> = load(pointer=pointer_add(%bias, {{.*}} * 2), width=16, predicate=
        CHECK: store(pointer=pointer_add(%out, {{.*}} * 2), value=
        """,
    )
    assert "width=2" not in text and "if " not in text


def test_w4a16_loads_its_int4_weights_16_bytes_a_thread():
    """The packed weights (uint8, rows 48 bytes apart) move in 16-byte loads, 32 int4 values each."""
    x = torch.zeros(5, 256, dtype=torch.float16)
    packed = torch.zeros(256, 48, dtype=torch.uint8)
    scales = torch.zeros(4, 96, dtype=torch.float16)
    out = torch.zeros(5, 96, dtype=torch.float16)
    text = lower_memory(example("w4a16_matmul").ir(x, packed, scales, out, BM=16, BN=32, GROUP=64))
    filecheck(
        text,
        """
        CHECK: for %GROUP: int32 in
        CHECK: %W: vector<uint8, 16> = load(pointer=pointer_add(%packed_weights, %{{.*}}), width=16,
        CHECK-SAME: predicate=
        CHECK-NOT: load(pointer=pointer_add(%packed_weights
        """,
    )


@tv.kernel(num_warps=1)
def copy_rows(source: tv.Tensor, destination: tv.Tensor, LAYOUT: tv.constexpr):
    """Two rows of 1024 values from ``block_idx * 2`` on, each thread holding 4 runs of 8 in each row."""
    m = tv.block_idx() * 2
    tile = tv.load_global(source, offsets=[m, 0], shape=[2, 1024], layout=LAYOUT)
    tv.store_global(destination, tile, offsets=[m, 0])


#: each thread: 2 rows x 4 runs of 8 float16 (16 bytes), the runs 256 values apart
ROWS_LAYOUT = local(2, 4) * spatial(1, 32) * local(1, 8)


def test_a_row_that_several_accesses_share_is_addressed_from_one_pointer_and_immediates():
    """64 bytes of a thread in each row: the base pointer and the pointer to the second row (a runtime
    stride away) are bound once, and each access adds a constant to one of them."""
    source = torch.zeros(6, 1024, dtype=torch.float16)
    text = lower_memory(copy_rows.ir(source, torch.zeros_like(source), LAYOUT=ROWS_LAYOUT))
    filecheck(
        text,
        """
        CHECK: %BASE: ptr<float16> = let(value=pointer_add(%source, %A * 2))
        CHECK: {{.*}} = load(pointer=%BASE, width=16, predicate=
        CHECK: {{.*}} = load(pointer=pointer_add(%BASE, 512), width=16, predicate=
        CHECK: {{.*}} = load(pointer=pointer_add(%BASE, 1536), width=16, predicate=
        CHECK: %ROW: ptr<float16> = let(value=pointer_add(%BASE, %source_stride0 * 2))
        CHECK: {{.*}} = load(pointer=%ROW, width=16, predicate=
        CHECK: {{.*}} = load(pointer=pointer_add(%ROW, 1536), width=16, predicate=
        CHECK: %OUT: ptr<float16> = let(value=pointer_add(%destination, {{.*}} * 2))
        CHECK: store(pointer=pointer_add(%OUT, 512), value=
        """,
    )


def test_rows_addressed_from_shared_pointers_copy_the_reference_bytes():
    """Ragged rows (5 of them: the last block's second row is out of bounds), and a row stride that is
    not the row's length: the interpreter of the Thread IR writes what the reference executor writes."""
    generator = torch.Generator().manual_seed(17)
    source = torch.randn(5, 1100, generator=generator).to(torch.float16)[:, :1024]
    poison = torch.full((5, 1024), float("nan"), dtype=torch.float16)
    reference, lowered = run_both(copy_rows, (3,), source, poison, LAYOUT=ROWS_LAYOUT)
    assert_same_bytes(reference, lowered)
    torch.testing.assert_close(lowered[1], source, rtol=0, atol=0)


@tv.kernel(num_warps=1)
def sum_row_blocks(source: tv.Tensor, destination: tv.Tensor, LAYOUT: tv.constexpr):
    """The sum of the blocks of 1024 columns of two rows from ``block_idx * 2`` on."""
    m = tv.block_idx() * 2
    total = tv.register_tensor(tv.float16, [2, 1024], init=0.0, layout=LAYOUT)
    for j in range(tv.cdiv(source.shape[1], 1024)):
        total = total + tv.load_global(source, offsets=[m, j * 1024], shape=[2, 1024], layout=LAYOUT)
    tv.store_global(destination, total, offsets=[m, 0])


def test_loads_at_constant_offsets_from_a_shared_pointer_are_immediates_in_the_ptx():
    """In a loop, as the quantized GEMM loads its operands: one sign extension for each row's pointer (of
    the loads and of the store), and the 16-byte loads at immediate offsets from them; a 32-bit address
    per load took a sign extension each (10 in all)."""
    source = torch.zeros(6, 4096, dtype=torch.float16)
    ptx = sum_row_blocks.ptx(
        source, torch.zeros(6, 1024, dtype=torch.float16), LAYOUT=ROWS_LAYOUT, target="sm_90"
    )
    loads = [line for line in ptx.splitlines() if "ld.global" in line]
    assert len(loads) == 8
    assert sum("+512]" in line or "+1024]" in line or "+1536]" in line for line in loads) == 6
    assert ptx.count("cvt.s64.s32") == 4


# -- layouts, strides and alignment


def test_a_transposed_view_moves_16_bytes_down_its_columns():
    """A transposed tensor has unit stride along dim 0: groups run down the tile's columns."""
    source = torch.zeros(64, 64).t()
    text = lower_memory(copy.ir(source, torch.zeros(64, 64).t(), BM=16, BN=16, START=0))
    filecheck(
        text,
        """
        CHECK: %source: ptr<float32>
        CHECK: vector<float32, 4> = load(pointer=pointer_add(%source, {{.*}}), width=16, predicate=
        """,
    )
    assert "width=4" not in text


def test_an_unaligned_offset_moves_one_element_at_a_time():
    """An offset of 1 float: no group of 2 or more is aligned to its size."""
    source = torch.zeros(32, 64)
    text = lower_memory(copy.ir(source, torch.zeros(32, 64), BM=8, BN=16, START=1))
    filecheck(text, "CHECK: float32 = load(pointer=pointer_add(%source, {{.*}}), width=4, predicate=")
    assert "width=16" not in text and "width=8" not in text


def test_an_offset_of_2_floats_moves_8_bytes():
    source = torch.zeros(32, 64)
    text = lower_memory(copy.ir(source, torch.zeros(32, 64), BM=8, BN=16, START=2))
    filecheck(text, "CHECK: vector<float32, 2> = load(pointer=pointer_add(%source, {{.*}}), width=8,")
    assert "width=16" not in text and "width=4" not in text


@tv.kernel(num_warps=1)
def copy_row(source: tv.Tensor, destination: tv.Tensor, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    tv.store_global(destination, tv.load_global(source, offsets=[start], shape=[BLOCK]), offsets=[start])


def test_int4_moves_16_bytes_of_32_elements_and_whole_bytes_at_the_end():
    """128 int4 elements are known to be a multiple of 16, not of 32: a group of 32 in bounds is one
    16-byte access, else one byte at a time (no byte holds elements on both sides of the end)."""
    data = torch.zeros(64, dtype=torch.uint8)
    source, destination = tv.view(data, tv.int4), tv.view(torch.zeros_like(data), tv.int4)
    text = lower_memory(copy_row.ir(source, destination, BLOCK=128))
    filecheck(
        text,
        """
        CHECK: %FULL: bool = let(value=(%I + 31) < %source_size0)
        CHECK: if %FULL {
        CHECK-NEXT: vector<int4, 32> = load(pointer=pointer_add(%source, %I >> 1), width=16)
        CHECK: } else {
        CHECK-NEXT: %IN: bool = let(value=%I < %source_size0)
        CHECK-NEXT: vector<int4, 2> = load(pointer=pointer_add(%source, %I >> 1), width=1, predicate=%IN)
        CHECK: if
        CHECK-NEXT: store(pointer=pointer_add(%destination, %J >> 1), value=%V, predicate=%W)
        CHECK-NEXT: } else {
        CHECK: store(pointer=pointer_add(%destination, %J >> 1), value={{.*}}, predicate=%W & (
        """,
    )


def test_int4_rows_16_elements_apart_move_8_bytes():
    """The launch knows a row stride only to be a multiple of 16 elements: 8 bytes of int4."""
    data = torch.zeros(64, 32, dtype=torch.uint8)
    source, destination = tv.view(data, tv.int4), tv.view(torch.zeros_like(data), tv.int4)
    text = lower_memory(copy.ir(source, destination, BM=8, BN=64, START=0))
    filecheck(text, "CHECK: vector<int4, 16> = load(pointer=pointer_add(%source, %{{.*}} >> 1), width=8,")
    assert "width=16" not in text


@tv.kernel(num_warps=1)
def widen(source: tv.Tensor, destination: tv.Tensor, START: tv.constexpr):
    tile = tv.load_global(source, offsets=[0, START], shape=[8, 1])
    tv.store_global(destination, tv.cast(tile, tv.int8), offsets=[0, 0])


def test_int4_elements_at_an_odd_offset_load_the_byte_that_holds_them():
    """One int4 element per access: its byte, shifted down by 0 or 4 bits."""
    data = torch.zeros(64, 32, dtype=torch.uint8)
    text = lower_memory(widen.ir(tv.view(data, tv.int4), torch.zeros(8, 1, dtype=torch.int8), START=1))
    filecheck(
        text,
        """
        CHECK: %B: vector<int4, 2> = load(pointer=pointer_add(%source, %E >> 1), width=1, predicate=
        CHECK-NEXT: gather([bitcast<int4, 2>(bitcast<uint8, 1>(%B) >> cast<uint8>((%E & 1) * 4))], [0])
        """,
    )


# -- writes


def test_a_replicated_tile_is_stored_by_one_replica():
    """A [4, 4] tile over 32 threads is held 8 times over: only threads 0 to 3 store."""
    source = torch.zeros(16, 4)
    text = lower_memory(copy.ir(source, torch.zeros(16, 4), BM=4, BN=4, START=0))
    filecheck(
        text,
        """
        CHECK: %W: bool = let(value=((%tid // 4) % 8) == 0)
        CHECK: store(pointer=pointer_add(%destination, {{.*}}), value={{.*}}, predicate=%W &
        """,
    )


@tv.kernel(num_warps=1)
def scatter_add(out: tv.Tensor, BLOCK: tv.constexpr):
    column = tv.load_scalar(out, 0, 0)
    tv.atomic_add(out, tv.register_tensor(tv.int32, [BLOCK], init=1), offsets=[tv.block_idx(), column])


def test_atomics_are_one_instruction_an_element_after_a_uniform_scalar_load():
    out = torch.zeros(4, 40, dtype=torch.int32)
    text = lower_memory(scatter_add.ir(out, BLOCK=64))
    filecheck(
        text,
        """
        CHECK: %INSIDE: bool = let(value=(0 < %out_size0) & (0 < %out_size1))
        CHECK-NEXT: %COLUMN: int32 = load(pointer=pointer_add(%out, 0), width=4, predicate=%INSIDE)
        CHECK: atomic(op="add", pointer=pointer_add(%out, %A * 4), value=element(%V, 0), predicate=
        CHECK: atomic(op="add", pointer=pointer_add(%out, %B * 4), value=element(%V, 1), predicate=
        """,
    )


# -- what is not lowered


def _raises_at(kernel, line: str, match: str, *args, **kwargs) -> None:
    with pytest.raises(LoweringError, match=match) as error:
        lower_memory(kernel.ir(*args, **kwargs))
    assert isinstance(error.value, CompilationError)
    assert line in str(error.value)


def test_a_store_that_writes_part_of_a_byte_goes_through_atomics_on_its_word():
    """Rows of 7 int4 start inside bytes that the neighbouring rows' threads also write: each element is
    cleared and set in its aligned 32-bit word by two atomics, and the result is the reference's."""
    generator = torch.Generator().manual_seed(9)
    source = torch.randint(0, 256, (46,), dtype=torch.uint8, generator=generator)
    poison = torch.randint(0, 256, (46,), dtype=torch.uint8, generator=generator)
    arguments = [tv.view(source, tv.int4, (13, 7)), tv.view(poison.clone(), tv.int4, (13, 7))]
    text = print_program(copy.thread_ir(*arguments, BM=8, BN=8, START=0), THREAD_IR)
    filecheck(
        text,
        """
        CHECK: %SHIFT: int32 = let(value=%BIT & 31)
        CHECK: atomic(op="and", pointer=pointer_add(pointer_cast<uint32>(%destination), (%BIT >> 5) << 2)
        CHECK: atomic(op="or", pointer=pointer_add(pointer_cast<uint32>(%destination), (%BIT >> 5) << 2)
        CHECK-NOT: store(
        """,
    )
    reference, lowered = run_both(copy, (2,), *arguments, BM=8, BN=8, START=0)
    assert_same_bytes(reference, lowered)
    expected = dtypes.unpack(source.numpy(), tv.int4, 91)
    assert (dtypes.unpack(lowered[1].tensor.numpy(), tv.int4, 91) == expected).all()


@pytest.mark.parametrize("dtype", [tv.int3, tv.uint5, tv.float6_e3m2, tv.int7], ids=str)
def test_elements_that_straddle_shared_bytes_go_through_atomics_on_one_or_two_words(dtype):
    """Rows of 7 elements of 3, 5, 6 or 7 bits start inside bytes that the neighbouring rows' threads also
    write, and some elements straddle two 32-bit words: both words are updated, and the result is the
    reference's, every bit around the tile kept."""
    count = 13 * 7
    nbytes = -(-count * dtype.nbits // 8)
    generator = torch.Generator().manual_seed(dtype.nbits)
    source = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, generator=generator)
    poison = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, generator=generator)
    arguments = [tv.view(source, dtype, (13, 7)), tv.view(poison.clone(), dtype, (13, 7))]
    text = print_program(copy.thread_ir(*arguments, BM=8, BN=8, START=0), THREAD_IR)
    filecheck(
        text,
        """
        CHECK: atomic(op="and", pointer=pointer_add(pointer_cast<uint32>(%destination), (%BIT >> 5) << 2)
        CHECK: atomic(op="or", pointer=pointer_add(pointer_cast<uint32>(%destination), (%BIT >> 5) << 2)
        CHECK: atomic(op="and", pointer=pointer_add(pointer_add(pointer_cast<uint32>(%destination)
        """,
    )
    reference, lowered = run_both(copy, (2,), *arguments, BM=8, BN=8, START=0)
    assert_same_bytes(reference, lowered)
    expected = dtypes.unpack(source.numpy(), dtype, count)
    assert (dtypes.unpack(lowered[1].tensor.numpy(), dtype, count) == expected).all()


def test_3_bit_elements_load_the_one_or_two_bytes_that_hold_them():
    data = tv.view(torch.zeros(64, 3, dtype=torch.uint8), tv.int3)
    text = lower_memory(widen.ir(data, torch.zeros(8, 1, dtype=torch.int8), START=1))
    filecheck(
        text,
        """
        CHECK: %BIT: int32 = let(value=%A * 3)
        CHECK-NEXT: %B0: uint8 = load(pointer=pointer_add(pointer_cast<uint8>(%source), %BIT >> 3), width=1,
        CHECK-NEXT: %B1: uint8 = load(pointer=pointer_add(pointer_cast<uint8>(%source), (%BIT >> 3) + 1),
        CHECK-SAME: predicate=%IN & ((%BIT & 7) > 5))
        CHECK-NEXT: ((cast<uint32>(%B0) | (cast<uint32>(%B1) << 8:uint32)) >> cast<uint32>(%BIT & 7))
        CHECK-SAME: & 7:uint32
        """,
    )


@tv.kernel(num_warps=1)
def byte_atomic(out: tv.Tensor):
    tv.atomic_max(out, tv.register_tensor(tv.int8, [32], init=1), offsets=[0])


def test_an_atomic_on_bytes_is_an_error_at_its_line():
    _raises_at(byte_atomic, "tv.atomic_max(out", "atomics act on 16, 32 or 64 bits",
               torch.zeros(32, dtype=torch.int8))  # fmt: skip
