"""Lowering of ``dot``, read in the Thread IR: the mma instruction the operand dtype takes (m16n8k16 for
float16, m16n8k32 for int8, m16n8k64 for int4, with the fragment registers the PTX ISA gives a lane), as many
as the tile holds atoms per warp, and the multiply-add fallback for shapes no mma tiles; ``atom_pairs``
against the layouts' tables."""

import dataclasses
import re

import numpy as np
import pytest
from layout_assignment import random_layout

from tilevm import ir
from tilevm.dtypes import float16, float32
from tilevm.ir.expr import Expr
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.thread import THREAD_IR, Element, Mma
from tilevm.ir.types import VectorType
from tilevm.layout import SCALAR_ATOM, local, mma_fragments
from tilevm.passes.filecheck import filecheck
from tilevm.passes.infer_layouts import infer_layouts
from tilevm.passes.lower import lower_to_threads
from tilevm.passes.lower.dot import atom_pairs


def printed(program: ir.Program) -> str:
    """The Thread IR's text, one element of a register written as a one-index gather whether it was built
    as ``element(%v, i)`` or as ``gather([%v], [i])`` (the same value; which one is the registers helper's
    choice)."""
    text = ir.print_program(program, THREAD_IR)
    return re.sub(r"element\((%[\w.]+), (\d+)\)", r"gather([\1], [\2])", text)


def lowered(text: str, target: str | None = None) -> ir.Program:
    """The Thread IR of a Tile IR program (layouts inferred), verified."""
    program = ir.verify(infer_layouts(ir.parse(text)))
    if target is not None:
        program = dataclasses.replace(program, target=target)
    return ir.verify(lower_to_threads(program), THREAD_IR)


def dot_program(operand: str, accumulator: str, m: int, n: int, k: int, num_threads: int = 128) -> str:
    """A program computing one dot of tiles made in registers (lowered without dead-code elimination)."""
    init = "0.0" if accumulator.startswith("float") else "0"
    return f"""kernel k() num_threads={num_threads} {{
  %a: register<{operand}, [{m}, {k}]> = alloc_register(dtype={operand}, shape=[{m}, {k}])
  %b: register<{operand}, [{k}, {n}]> = alloc_register(dtype={operand}, shape=[{k}, {n}])
  %c: register<{accumulator}, [{m}, {n}]> = alloc_register(
      dtype={accumulator}, shape=[{m}, {n}], init={init}:{accumulator})
  %d: register<{accumulator}, [{m}, {n}]> = dot(a=%a, b=%b, accumulator=%c)  # loc("user.py", 7, 4)
}}"""


def source_of(register: Expr) -> Expr:
    """The register an mma operand was picked from (by ``element`` or a ``gather``)."""
    return register.vector if isinstance(register, Element) else register.sources[0]


def mmas(program: ir.Program) -> list[Mma]:
    return [instruction for instruction in walk_instructions(program.body) if isinstance(instruction, Mma)]


@pytest.mark.parametrize(
    ("operand", "shape", "register", "a_count", "b_count", "k"),
    [
        # PTX ISA, "Matrix Fragments for mma.m16n8k16" (.f16), "mma.m16n8k32" (.s8), "mma.m16n8k64" (.s4):
        # a lane holds 4 A and 2 B registers of 32 bits, and 4 C/D float32 or int32
        ("float16", "m16n8k16", "vector<float16, 2>", 4, 2, 16),
        ("bfloat16", "m16n8k16", "vector<bfloat16, 2>", 4, 2, 16),
        ("int8", "m16n8k32", "vector<int8, 4>", 4, 2, 32),
        ("uint8", "m16n8k32", "vector<uint8, 4>", 4, 2, 32),
        ("float8_e4m3", "m16n8k32", "vector<float8_e4m3, 4>", 4, 2, 32),
        ("int4", "m16n8k64", "vector<int4, 8>", 4, 2, 64),
    ],
)
def test_a_dot_becomes_one_mma_per_atom_with_the_lane_fragments(
    operand, shape, register, a_count, b_count, k
):
    accumulator = "float32" if operand.startswith(("float", "bfloat")) else "int32"
    # 64 x 32 atoms of 16 x 8: 4 x 4 of them over 4 warps, 2 atoms of k: 4 x 2 mma per warp
    program = lowered(dot_program(operand, accumulator, 64, 32, 2 * k))
    instructions = mmas(program)
    assert len(instructions) == 4 * 4 // 4 * 2
    # each register a gather of the 32 bits' worth of elements (2 float16, 4 int8, 8 int4) of the operand
    elements = int(register.rstrip(">").split(", ")[1])
    element_list = "{{[0-9]+" + ", [0-9]+" * (elements - 1) + "}}"
    a_registers = ", ".join([f"gather([%a], [{element_list}])"] * a_count)
    b_registers = ", ".join([f"gather([%b], [{element_list}])"] * b_count)
    filecheck(
        printed(program),
        f"""
        CHECK: %D0: {accumulator}, %D1: {accumulator}, %D2: {accumulator}, %D3: {accumulator} = mma(
        CHECK-SAME: shape="{shape}", a=[{a_registers}], b=[{b_registers}]
        CHECK-SAME: c=[gather([%c], [0]), gather([%c], [1]), gather([%c], [2]), gather([%c], [3])]
        CHECK: mma({{{{.*}}}} c=[%D0, %D1, %D2, %D3])
        CHECK: = let(value=gather([
        """,
    )
    assert {str(operand.type) for instruction in instructions for operand in instruction.a} == {register}


def test_a_float16_accumulator_is_accumulated_in_float32_and_rounded_once_per_dot():
    program = lowered(dot_program("float16", "float16", 16, 8, 32, num_threads=32))
    filecheck(
        printed(program),
        """
        CHECK: %D: float32, {{.*}} = mma(shape="m16n8k16", {{.*}} c=[gather([%C], [0]),
        CHECK: mma(
        CHECK: %R: vector<float32, 4> = let(value=gather(
        CHECK: vector<float16, 4> = let(
        """,
    )
    first = mmas(program)[0]
    assert source_of(first.c[0]).type == VectorType(float32, 4)  # the accumulator widened once


def test_a_64_bit_accumulator_adds_the_int32_sum_of_the_products():
    program = lowered(dot_program("int8", "int64", 16, 8, 32, num_threads=32))
    filecheck(
        printed(program),
        """
        CHECK: mma(shape="m16n8k32", {{.*}} c=[0, 0, 0, 0])
        CHECK: %R: vector<int32, 4> = let(value=gather(
        CHECK-NEXT: %W: vector<int64, 4> = let(value=cast<int64>(%R))
        CHECK-NEXT: vector<int64, 4> = let(value=%c + %W)
        """,
    )


def test_shapes_no_mma_tiles_take_one_multiply_add_per_thread_and_k():
    # 5 x 3 results over 32 threads, k = 7: 7 steps of a vector multiply-add in float32
    program = lowered(dot_program("float16", "float32", 5, 3, 7, num_threads=32))
    assert not mmas(program)
    filecheck(
        printed(program),
        """
        CHECK: %A: {{.*}} = let(value=cast<float32>(%a))
        CHECK: %B: {{.*}} = let(value=cast<float32>(%b))
        CHECK: %F1: {{.*}} = let(value=%c + (gather([%A], {{.*}}) * gather([%B], {{.*}})))
        CHECK-NEXT: %F2: {{.*}} = let(value=%F1 + (
        CHECK-NEXT: %F3: {{.*}} = let(value=%F2 + (
        CHECK-NEXT: %F4: {{.*}} = let(value=%F3 + (
        CHECK-NEXT: %F5: {{.*}} = let(value=%F4 + (
        CHECK-NEXT: %F6: {{.*}} = let(value=%F5 + (
        CHECK-NEXT: %F7: {{.*}} = let(value=%F6 + (
        CHECK-NOT: = let(
        """,
    )


def test_float8_on_sm_80_takes_two_float16_mma_per_atom_from_the_same_lane_registers():
    # sm_80's tensor cores take no float8: each half of k32 is one m16n8k16 on the lane's elements, widened
    program = lowered(dot_program("float8_e4m3", "float32", 16, 8, 32, num_threads=32), target="sm_80")
    filecheck(
        printed(program),
        """
        CHECK: %D0: float32, %D1: float32, %D2: float32, %D3: float32 = mma(shape="m16n8k16",
        CHECK-SAME: a=[gather([%HA], [0, 1]), gather([%HA], [4, 5]),
        CHECK-SAME: gather([%HA], [2, 3]), gather([%HA], [6, 7])]
        CHECK-SAME: b=[gather([%HB], [0, 1]), gather([%HB], [2, 3])], c=[gather([%c], [0]),
        CHECK-NEXT: mma(shape="m16n8k16",
        CHECK-SAME: a=[gather([%HA], [8, 9]), gather([%HA], [12, 13]),
        CHECK-SAME: gather([%HA], [10, 11]), gather([%HA], [14, 15])]
        CHECK-SAME: b=[gather([%HB], [4, 5]), gather([%HB], [6, 7])], c=[%D0, %D1, %D2, %D3])
        CHECK-NOT: mma(
        """,
    )
    first = mmas(program)[0]
    # the whole fragments widened at once: 16 elements of a, 8 of b
    assert source_of(first.a[0]).type == VectorType(float16, 16)
    assert source_of(first.b[0]).type == VectorType(float16, 8)
    assert len(mmas(lowered(dot_program("float8_e4m3", "float32", 16, 8, 32, num_threads=32)))) == 1


def _let_outputs(program: ir.Program) -> list:
    return [
        instruction.output
        for instruction in walk_instructions(program.body)
        if hasattr(instruction, "output")
    ]


@pytest.mark.parametrize("seed", range(6))
def test_atom_pairs_give_each_thread_the_atoms_of_its_rows_and_columns(seed):
    rng = np.random.default_rng(seed)
    fragments = SCALAR_ATOM if seed % 2 else mma_fragments("m16n8k16", "f16")
    m, n, k = (int(size) for size in rng.integers(1, 5, size=3))
    groups = 4 if fragments is SCALAR_ATOM else 2
    quotient = random_layout((m, n), groups, rng)
    a = quotient.reduce(1) * local(1, k) * fragments.a
    b = local(k, 1) * quotient.reduce(0) * fragments.b
    pairs = atom_pairs(a, b, quotient * fragments.c, fragments)
    # the layouts' tables: thread t's atom i of a quotient covers the coordinates table[t, i]
    a_atoms, b_atoms = (a / fragments.a).table(), (b / fragments.b).table()
    c_atoms = quotient.table()
    assert len(pairs) == quotient.local_size and {len(per_k) for per_k in pairs} == {k}
    for thread in range(groups):
        for atom, per_k in enumerate(pairs):
            row, column = c_atoms[thread, atom]
            for depth, (a_atom, b_atom) in enumerate(per_k):
                assert a_atoms[thread, a_atom].tolist() == [row, depth]
                assert b_atoms[thread, b_atom].tolist() == [depth, column]
