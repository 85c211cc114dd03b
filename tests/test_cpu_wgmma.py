"""wgmma in the SIMT interpreter, against numpy's float64 A @ B + C of seeded small integers (every sum
exact): the operands laid out in shared memory, or A in registers, and the registers read back as
``wgmma_programs`` transcribes the PTX ISA, for every swizzle mode, n of 8 to 256, float16 and bfloat16,
one and two warpgroups; A's register fragment against the ISA's figure and ``tilevm.layout``'s mma
fragment; the descriptor helpers against the ISA's bit fields; and the errors of a warpgroup that runs it
wrongly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.cpu_programs import assert_error_at, run
from tests.wgmma_programs import (
    Case,
    a_fragment_positions,
    accumulator_positions,
    descriptor_bits,
    kernel_arguments,
    make_data,
    program_text,
)
from tilevm.dtypes import bfloat16, float16, int32, uint8, uint64
from tilevm.ir import Param, Program, verify
from tilevm.ir.expr import Const, Var
from tilevm.ir.thread import THREAD_IR, SharedAddress, SharedPointer, Store
from tilevm.ir.thread.warpgroup import MatrixDescriptor, matrix_descriptor, matrix_descriptor_expr
from tilevm.ir.types import PointerType
from tilevm.layout import mma_fragments
from tilevm.runtime.cpu import execute

CASES = [
    Case(n=8, dtype=float16, swizzle=128, steps=4),
    Case(n=24, dtype=bfloat16, swizzle=64, steps=4),
    Case(n=128, dtype=float16, swizzle=32, steps=2),
    Case(n=256, dtype=bfloat16, swizzle=0, steps=2),
    Case(n=24, dtype=float16, swizzle=0, steps=3, k_outer=True),
    Case(n=128, dtype=bfloat16, swizzle=128, steps=2),
    Case(n=16, dtype=float16, swizzle=128, steps=4, warpgroups=2),
    Case(n=40, dtype=bfloat16, swizzle=0, steps=2, warpgroups=2, k_outer=True),
    # A in registers, B in shared memory
    Case(n=8, dtype=float16, swizzle=128, steps=4, a_in_registers=True),
    Case(n=64, dtype=bfloat16, swizzle=64, steps=2, a_in_registers=True),
    Case(n=256, dtype=float16, swizzle=0, steps=2, a_in_registers=True),
    Case(n=256, dtype=bfloat16, swizzle=128, steps=3, warpgroups=2, a_in_registers=True),
    Case(n=64, dtype=float16, swizzle=32, steps=3, warpgroups=2, a_in_registers=True),
    Case(n=8, dtype=bfloat16, swizzle=0, steps=2, warpgroups=2, k_outer=True, a_in_registers=True),
]


def _run(case: Case, seed: int) -> tuple[np.ndarray, np.ndarray]:
    data = make_data(case, np.random.default_rng(seed))
    d = torch.full((case.num_threads * case.n // 2,), float("nan"))
    base = torch.full((1,), 7, dtype=torch.int32)  # poisoned
    run(program_text(case), kernel_arguments(case, data, d, base))
    assert int(base[0]) == 0, "the interpreter's shared window starts the block's shared memory at 0"
    return d.numpy().reshape(case.num_threads, case.n // 2), data.expected(case.n)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_wgmma_computes_a_times_b_plus_c_from_the_isa_layouts(case: Case) -> None:
    actual, expected = _run(case, seed=CASES.index(case) + 3)
    assert np.array_equal(actual, expected)


def test_the_accumulator_order_is_the_isa_figure() -> None:
    # Figure "WGMMA .m64nNk16 register fragment layout for accumulator matrix D": thread 0 holds d0, d1 at
    # row 0, columns 0, 1 and d2, d3 at row 8; thread 37 (warp 1, lane 5) d4..d7 at rows 17 and 25,
    # columns 10, 11 (its lane's pair in the second block of 8 columns)
    rows, columns = accumulator_positions(16)
    assert list(zip(rows[0, :4], columns[0, :4])) == [(0, 0), (0, 1), (8, 0), (8, 1)]
    assert list(zip(rows[37, 4:], columns[37, 4:])) == [(17, 10), (17, 11), (25, 10), (25, 11)]
    every = rows * 16 + columns
    assert np.array_equal(np.sort(every.reshape(-1)), np.arange(64 * 16))


def test_the_register_a_fragment_is_the_isa_figure_and_the_mma_fragment() -> None:
    # Figure "WGMMA .m64nNk16 register fragment layout for matrix A": thread 0 holds a0, a1 at row 0, columns
    # 0, 1, a2, a3 at row 8, a4, a5 at row 0, columns 8, 9; thread 101 (warp 3, lane 5) a6, a7 at row 48 + 1
    # + 8, columns 10, 11
    rows, columns = a_fragment_positions()
    assert list(zip(rows[0].reshape(-1), columns[0].reshape(-1))) == [
        (0, 0), (0, 1), (8, 0), (8, 1), (0, 8), (0, 9), (8, 8), (8, 9),
    ]  # fmt: skip
    assert list(zip(rows[101, 3], columns[101, 3])) == [(57, 10), (57, 11)]
    assert np.array_equal(np.sort((rows * 16 + columns).reshape(-1)), np.arange(64 * 16))
    # each warp's part is mma.sync m16n8k16's A fragment (tilevm.layout: lane, local slot 2 r + e)
    table = mma_fragments("m16n8k16", "f16").a.table()  # [lane, slot] -> (row, column)
    for warp in range(4):
        lanes = slice(32 * warp, 32 * warp + 32)
        assert np.array_equal(rows[lanes].reshape(32, 8), table[:, :, 0] + 16 * warp)
        assert np.array_equal(columns[lanes].reshape(32, 8), table[:, :, 1])


@pytest.mark.parametrize(
    ("start", "leading", "stride", "swizzle"),
    [(0x400, 16, 1024, 128), (0x3FFF0, 2048, 128, 0), (256, 16, 512, 64)],
)
def test_the_descriptor_helpers_write_and_read_the_isa_fields(start, leading, stride, swizzle) -> None:
    # the ISA's "Matrix Descriptor Format": bits 0-13, 16-29, 32-45 are (x & 0x3FFFF) >> 4, 62-63 the mode
    expected = (start & 0x3FFFF) >> 4 | descriptor_bits(leading, stride, swizzle)
    bits = matrix_descriptor(start, leading, stride, swizzle)
    assert bits == expected
    assert MatrixDescriptor.decode(bits) == MatrixDescriptor(start, leading, stride, 0, swizzle)
    assert MatrixDescriptor.decode(bits | 5 << 49).base_offset == 5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((8, 16, 16, 48), "swizzle is 0, 128, 64, 32 bytes, got 48"),
        ((8, 16, 16, 0), "start is a multiple of 16"),
    ],
)
def test_the_descriptor_helper_refuses_what_the_fields_cannot_hold(arguments, message) -> None:
    with pytest.raises(ValueError, match=message):
        matrix_descriptor(*arguments)


ONE_STEP = Case(n=8, dtype=float16, swizzle=128, steps=1)


def _arguments(case: Case) -> list[torch.Tensor]:
    data = make_data(case, np.random.default_rng(0))
    d = torch.zeros(case.num_threads * case.n // 2)
    return kernel_arguments(case, data, d, torch.zeros(1, dtype=torch.int32))


def _edited(old: str, new: str, case: Case = ONE_STEP) -> tuple[str, int]:
    """The case's program with one line replaced, and the number of the wgmma's line."""
    text = program_text(case)
    assert old in text
    text = text.replace(old, new, 1)
    line = next(number for number, line in enumerate(text.splitlines(), 1) if "= wgmma(" in line)
    return text, line


PARTLY_ACTIVE = """
kernel partly(%d: ptr<float32>) num_threads=256 shared_bytes=1024 {
  if (thread_index() < 128) | (thread_index() >= 192) {
    %FIRST
  }
}"""


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("%x0: float32, %x1: float32, %x2: float32, %x3: float32 = wgmma(n=8, dtype=float16, a=0:uint64, "
         "b=0:uint64, c=[0.0, 0.0, 0.0, 0.0])", "wgmma m64n8k16"),
        ("wgmma_fence()", "wgmma_fence"),
        ("wgmma_commit_group()", "wgmma_commit_group"),
        ("wgmma_wait_group(pending=0)", "wgmma_wait_group"),
    ],
)  # fmt: skip
def test_a_partly_active_warpgroup_is_an_error(statement: str, what: str) -> None:
    assert_error_at(
        PARTLY_ACTIVE.replace("%FIRST", statement), [torch.zeros(1)], 3,
        rf"{what} with 64 of the 128 threads of the warpgroup of thread 128 of block \(0, 0, 0\) active: "
        "every thread of the warpgroup must run it",
    )  # fmt: skip


def test_a_block_of_part_of_a_warpgroup_is_an_error() -> None:
    text, line = _edited("  wgmma_fence()\n", "")  # the wgmma's error, not the fence's
    text = text.replace("num_threads=128", "num_threads=64").replace("(%t // 128)", "(%t // 64)")
    assert_error_at(text, _arguments(ONE_STEP), line, "wgmma m64n8k16 needs whole warpgroups of 128 threads")


def test_a_descriptor_that_differs_between_threads_is_an_error() -> None:
    old = "  %a0: uint64 = let(value=((cast<uint64>(shared_address(shared_pointer<uint8>(%region + 0)))"
    text, line = _edited(old, old.replace("%region + 0", "%region + ((%t // 96) * 32)"))
    assert_error_at(
        text,
        _arguments(ONE_STEP),
        line,
        r"wgmma's a descriptor is 0x\w+ in thread 0 of block \(0, 0, 0\) but "
        r"0x\w+ in thread 96 of block \(0, 0, 0\): it must be the same in every thread of the warpgroup",
    )


def test_an_operand_outside_the_shared_memory_is_an_error() -> None:
    # one warpgroup's region: A's 64 rows of 128 bytes, then B's 8
    old = "  %b0: uint64 = let(value=((cast<uint64>(shared_address(shared_pointer<uint8>(%region + 8192)))"
    text, line = _edited(old, old.replace("%region + 8192", "%region + 9216"))
    message = (
        "wgmma's read of b of 16 bytes at shared byte 9216 is outside the block's 9216 bytes of shared memory"
    )
    assert_error_at(text, _arguments(ONE_STEP), line, message)


def test_a_nonzero_base_offset_is_an_error() -> None:
    # bit 49: a base offset of 1
    text, line = _edited("a=%a0,", "a=%a0 | 562949953421312:uint64,")
    assert_error_at(text, _arguments(ONE_STEP), line, "has base offset 1; tilevm places swizzle patterns")


def test_operands_written_after_the_last_barrier_race() -> None:
    text, line = _edited("  barrier()\n", "")
    assert_error_at(text, _arguments(ONE_STEP), line, "reads shared byte 0 of block 0, written by thread 0")


@pytest.mark.parametrize(("offset", "swizzle"), [(0, 128), (1056, 0), (4096 + 96, 64)])
def test_the_descriptor_expression_is_the_descriptor_of_the_shared_address(offset: int, swizzle: int) -> None:
    """matrix_descriptor_expr of a run-time shared address gives matrix_descriptor's bits of that address."""
    out = Var("out", PointerType(uint64))
    start = SharedAddress(SharedPointer(uint8, Const(offset, int32)))
    body = (Store(pointer=out, value=matrix_descriptor_expr(start, 16, 1024, swizzle)),)
    program = Program("descriptor", (Param(out, 16),), 128, body, shared_bytes=8192)
    result = torch.zeros(1, dtype=torch.int64)
    execute(verify(program, THREAD_IR), [result], (1,))
    assert int(result[0]) & (1 << 64) - 1 == matrix_descriptor(offset, 16, 1024, swizzle)
