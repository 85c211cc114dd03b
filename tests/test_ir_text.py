"""The text form of Tile IR round-trips: parse(print(p)) == p and print(parse(print(p))) == print(p)."""

from __future__ import annotations

import dataclasses
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilevm.dtypes import (
    bfloat16,
    boolean,
    e8m0,
    float6_e3m2,
    float16,
    float32,
    int4,
    int32,
    int64,
    ue4m3,
    uint3,
    uint8,
    uint16,
)
from tilevm.errors import SourceLocation
from tilevm.ir import (
    INSTRUCTION_CLASSES,
    AllocRegister,
    AllocShared,
    Arange,
    AssignScalar,
    AssignTensor,
    AtomicGlobal,
    AtomicScalar,
    Binary,
    BinaryExpr,
    BlockIndex,
    Cast,
    CastExpr,
    Const,
    ConvertLayout,
    CopyAsync,
    CopyAsyncCommit,
    CopyAsyncWait,
    DeclareScalar,
    Dot,
    DotWait,
    FreeShared,
    GlobalView,
    GridSize,
    LetScalar,
    LoadGlobal,
    LoadScalar,
    LoadShared,
    Permute,
    PermuteShared,
    Program,
    ProgramBuilder,
    Reduce,
    SharedDot,
    SliceShared,
    StoreGlobal,
    StoreShared,
    Sync,
    Unary,
    UnaryExpr,
    Var,
    View,
    Where,
    parse,
    print_program,
    verify,
)
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.types import ScalarType
from tilevm.layout import SharedLayout, local, shared, spatial
from tilevm.layout.shared import permute_shared

ZERO, ONE = Const(0), Const(1)
WEIRD_FILE = 'my dir/k "1":2.py'


def build_everything(shared_layout: SharedLayout | None = None, init: float = 0.0) -> Program:
    """A program that uses every instruction class, every type kind and nested control flow."""
    b = ProgramBuilder("everything", num_threads=32)
    b.location = SourceLocation("kernel.py", 10, 4)
    a_ptr = b.pointer_param("a", float16, divisibility=16)
    w_ptr = b.pointer_param("w", uint8)
    n = b.scalar_param("n", int32, divisibility=8)
    b.scalar_param("scale", float32)
    counters = b.pointer_param("counters", int64)
    a = b.emit_output(GlobalView, "a_view", pointer=a_ptr, shape=(n, Const(8)), strides=(Const(8), ONE))
    w = b.emit_output(GlobalView, "w_view", pointer=w_ptr, shape=(n,), strides=(ONE,))
    row = BinaryExpr("mul", BlockIndex(0), Const(16))
    smem = b.emit_output(AllocShared, "smem", layout=shared_layout, dtype=float16, shape=(16, 8))
    part_layout = None if shared_layout is None else shared_layout.slice((0, 4), (16, 4), (0, 1))
    part = b.emit_output(
        SliceShared, "part", part_layout, tensor=smem, offsets=(ZERO, Const(4)), shape=(16, 4), dims=(0, 1)
    )
    b.emit(CopyAsync(destination=smem, source=a, offsets=(row, ZERO), dims=(0, 1)))
    b.emit(CopyAsyncCommit())
    b.emit(CopyAsyncWait(pending=0))
    b.emit(Sync())
    b.location = SourceLocation(WEIRD_FILE, 20, 0)
    x = b.emit_output(LoadShared, "x", layout=spatial(8, 4).local(2, 2), tensor=smem)
    b.emit_output(ConvertLayout, "moved", layout=local(2, 1).spatial(8, 4).local(1, 2), operand=x)
    y = b.emit_output(LoadGlobal, "x", tensor=a, offsets=(row, ZERO), shape=(16, 8), dims=(0, 1),
                      other=Const(-math.inf, float16))  # fmt: skip
    b.emit(StoreShared(tensor=smem, value=y))
    packed = b.emit_output(LoadGlobal, "packed", tensor=w, offsets=(ZERO,), shape=(8,), dims=(0,))
    b.emit_output(LoadScalar, "first_byte", tensor=w, indices=(BinaryExpr("add", n, Const(-1)),))
    counters_view = b.emit_output(GlobalView, "counters_view", pointer=counters, shape=(n,), strides=(ONE,))
    b.emit_output(AtomicScalar, "ticket", op="add", tensor=counters_view, indices=(BlockIndex(0),),
                  value=Const(1, int64))  # fmt: skip
    nibbles = b.emit_output(View, "nibbles", operand=packed, dtype=int4, shape=(4, 4))
    b.emit_output(Cast, "wide", operand=nibbles, dtype=float6_e3m2, rounding="zero")
    acc = b.emit_output(AllocRegister, "acc", dtype=float32, shape=(16, 16), init=Const(init, float32))
    weights = b.emit_output(AllocRegister, "weights", dtype=float16, shape=(8, 16), init=Const(1, float16))
    b.emit_output(AllocRegister, "junk", dtype=uint3, shape=(32,))
    b.emit_output(AllocShared, "scales", dtype=e8m0, shape=(4, 32))
    tiles = [b.emit_output(AllocShared, f"wg_{name}", dtype=float16, shape=shape)
             for name, shape in (("a", (64, 16)), ("b", (16, 8)))]  # fmt: skip
    wg_acc = b.emit_output(AllocRegister, "wg_acc", dtype=float32, shape=(64, 8), init=Const(0.0, float32))
    b.emit_output(SharedDot, "wg_product", a=tiles[0], b=tiles[1], accumulator=wg_acc, wait=False)
    b.emit(DotWait(pending=0))
    columns_layout = None if shared_layout is None else permute_shared(shared_layout, (1, 0))
    b.emit_output(PermuteShared, "columns", columns_layout, tensor=smem, dims=(1, 0))
    b.emit_output(Permute, "flipped", operand=nibbles, dims=(1, 0))
    b.emit_output(Arange, "indices", dtype=uint16, size=300)
    total = b.emit_output(DeclareScalar, "total", init=Const(7, int64))
    b.emit_output(LetScalar, "half", value=BinaryExpr("floordiv", n, Const(2)))
    b.location = None
    with b.for_range("k", ZERO, BinaryExpr("floordiv", n, Const(8)), ONE, unroll=2) as k:
        summed = b.emit_output(Binary, "sum", op="add", lhs=x, rhs=y)
        negated = b.emit_output(Unary, "neg", op="neg", operand=summed)
        positive = b.emit_output(Binary, "pos", op="gt", lhs=negated, rhs=Const(-0.0, float16))
        chosen = b.emit_output(
            Where, "chosen", condition=positive, on_true=negated, on_false=Const(2.5, float16)
        )
        product = b.emit_output(Dot, "product", a=chosen, b=b.emit_output(Binary, "t", op="mul", lhs=weights,
                                rhs=Const(math.nan, float16)), accumulator=acc)  # fmt: skip
        b.emit(AssignTensor(destination=acc, value=product))
        b.emit(AssignScalar(variable=total, value=BinaryExpr("add", total, CastExpr(k, int64))))
        with b.if_then(BinaryExpr("lt", BinaryExpr("mod", k, Const(2)), ONE)):
            b.emit(Sync())
        with (
            b.otherwise(),
            b.while_loop(BinaryExpr("ne", UnaryExpr("abs", k), BinaryExpr("max", GridSize(1), n))),
        ):
            b.emit(CopyAsyncWait(pending=1))
    reduced = b.emit_output(Reduce, "row_sums", operand=acc, op="sum", dtype=float32, dim=1, keepdim=True)
    half = b.emit_output(Cast, "half", operand=reduced, dtype=float16)
    halves = b.emit_output(Binary, "halves", op="add", lhs=half, rhs=b.emit_output(AllocRegister, "z",
                           dtype=float16, shape=(16, 8), init=Const(1, float16)))  # fmt: skip
    b.emit(StoreGlobal(tensor=a, value=halves, offsets=(row, ZERO), dims=(0, 1)))
    b.emit(AtomicGlobal(op="max", tensor=a, value=halves, offsets=(ZERO, ZERO), dims=(0, 1)))
    b.emit_output(AllocShared, "unused", dtype=bfloat16, shape=(part.type.shape[0],))
    with b.if_then(Const(True, boolean)):
        b.emit(FreeShared(tensor=smem))
    return b.build()


def round_trip(program: Program) -> Program:
    text = print_program(program)
    parsed = parse(text)
    assert parsed == program, text
    assert print_program(parsed) == text
    return parsed


def locations(body: tuple) -> list[SourceLocation | None]:
    return [instruction.loc for instruction in walk_instructions(body)]


def test_every_instruction_type_and_control_flow_round_trips():
    program = verify(build_everything(shared_layout=shared([16, 8]).swizzle(1, 2, 2)))
    used = {type(instruction) for instruction in walk_instructions(program.body)}
    assert used == set(INSTRUCTION_CLASSES)
    parsed = round_trip(program)
    verify(parsed)
    assert locations(parsed.body) == locations(program.body)
    assert SourceLocation(WEIRD_FILE, 20, 0) in locations(parsed.body)


def test_text_shows_types_layouts_names_and_locations():
    text = print_program(build_everything(shared_layout=SharedLayout.row_major(16, 8)))
    assert text.startswith(
        "kernel everything(%a: ptr<float16> divisibility=16, %w: ptr<uint8>, %n: int32 divisibility=8, "
        "%scale: float32, %counters: ptr<int64>) num_threads=32 {\n"
        "  %a_view: global<float16, [%n, 8], strides=[8, 1]> = global_view(pointer=%a, shape=[%n, 8], "
        'strides=[8, 1])  # loc("kernel.py", 10, 4)\n'
    )
    assert "%smem: shared<float16, [16, 8], shared((16, 8), strides=(8, 1))> = alloc_shared(" in text
    assert "%x: register<float16, [16, 8], spatial(8, 4).local(2, 2)> = load_shared(tensor=%smem)" in text
    assert "%x.1: register<float16, [16, 8]> = load_global(" in text  # the second %x is renamed
    assert "offsets=[block_index(0) * 16, 0], shape=[16, 8], dims=[0, 1], other=-inf:float16)" in text
    assert '# loc("my dir/k \\"1\\":2.py", 20, 0)' in text
    assert "  for %k: int32 in range(0, %n // 8, 1) unroll=2 {\n" in text
    assert "value=%total + cast<int64>(%k))" in text
    assert "    if (%k % 2) < 1 {\n      sync()\n    } else {\n" in text
    assert "while abs(%k) != max(grid_size(1), %n) {" in text
    assert "rhs=nan:float16)" in text and "rhs=-0.0:float16)" in text and "init=7:int64)" in text
    assert 'reduce(operand=%acc, op="sum", dtype=float32, dim=1, keepdim=true)' in text
    assert 'cast(operand=%nibbles, dtype=float6_e3m2, rounding="zero")' in text
    assert "alloc_register(dtype=uint3, shape=[32])" in text  # a field at its default is left out
    assert (
        "%moved: register<float16, [16, 8], local(2, 1).spatial(8, 4).local(1, 2)> = "
        "convert_layout(operand=%x)" in text
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("init=0.0)", "init=1.0)"),  # a changed constant
        ("init=0.0)", "init=0.0:bfloat16)"),  # a changed constant dtype
        ('op="add", lhs=%x, rhs=%x.1', 'op="add", lhs=%x.1, rhs=%x'),  # swapped operands
        (
            "%junk: register<uint3, [32]> = alloc_register(dtype=uint3",
            "%junk: register<int4, [32]> = alloc_register(dtype=int4",
        ),  # a changed dtype
        ("spatial(8, 4).local(2, 2)> = load_shared", "column_spatial(4, 8).local(2, 2)> = load_shared"),
        ("unroll=2 ", ""),
        ("dim=1, keepdim=true", "dim=1"),
        ("pending=1", "pending=2"),
        ("%n // 8", "%n // 4"),
    ],
)
def test_changed_programs_are_not_equal(before, after):
    program = build_everything()
    text = print_program(program)
    assert before in text
    changed = parse(text.replace(before, after, 1))
    assert changed != program
    assert parse(text) == program


def test_distinct_built_programs_are_not_equal():
    assert build_everything() == build_everything()
    assert build_everything(init=1.0) != build_everything()
    assert build_everything(shared_layout=SharedLayout.row_major(16, 8)) != build_everything()
    swizzled = shared([16, 8]).swizzle(1, 2, 2)
    assert build_everything(shared_layout=swizzled) != build_everything(
        shared_layout=SharedLayout.row_major(16, 8)
    )


@pytest.mark.parametrize(
    ("constant", "text"),
    [
        (Const(3), "3"),
        (Const(-12), "-12"),
        (Const(7, int64), "7:int64"),
        (Const(2.5, float32), "2.5"),
        (Const(-math.inf, float32), "-inf"),
        (Const(math.nan, float32), "nan"),
        (Const(-0.0, float32), "-0.0"),
        (Const(1.0, float16), "1.0:float16"),
        (Const(1, float16), "1:float16"),  # an int value of a float dtype stays an int
        (Const(True, boolean), "true"),
        (Const(True), "true"),  # the dtype defaults to the value's type
        (Const(True, int32), "true:int32"),
        (Const(0.5), "0.5"),
        (Const(False, boolean), "false"),
        (Const(1e-05, ue4m3), "1e-05:ue4m3"),
        (Const(-3, int4), "-3:int4"),
    ],
)
def test_constants_print_and_parse(constant, text):
    assert _expression_text(constant) == text
    parsed = _parse_expression(text)
    assert parsed == constant or (math.isnan(parsed.value) and math.isnan(constant.value))
    assert type(parsed.value) is type(constant.value) and parsed.dtype is constant.dtype


@given(st.floats(allow_nan=False))
def test_floats_round_trip_bit_for_bit(value):
    parsed = _parse_expression(_expression_text(Const(value, float32)))
    assert struct.pack("<d", parsed.value) == struct.pack("<d", value)


def _expressions():
    n = Var("n", ScalarType(int32))
    leaves = st.one_of(
        st.just(n),
        st.integers(-(2**40), 2**40).map(Const),
        st.sampled_from([BlockIndex(0), GridSize(2)]),
    )
    ops = st.sampled_from(["add", "sub", "mul", "floordiv", "mod", "and", "xor", "shl", "max", "min", "lt"])

    def extend(children):
        return st.one_of(
            st.builds(BinaryExpr, ops, children, children),
            st.builds(UnaryExpr, st.sampled_from(["neg", "abs"]), children),
            st.builds(CastExpr, children, st.just(int32)),
        )

    return st.recursive(leaves, extend, max_leaves=8)


@settings(deadline=None)  # a parse takes milliseconds, more on a loaded machine: no per-example deadline
@given(_expressions())
def test_scalar_expressions_round_trip(expression):
    b = ProgramBuilder("e", num_threads=32)
    n = b.scalar_param("n", int32)
    b.emit(DeclareScalar(output=Var("e", expression.type), init=_substitute(expression, n)))
    round_trip(b.build())


def _substitute(expression, n):
    """``expression`` with its one variable replaced by the program's parameter ``n``."""
    if isinstance(expression, Var):
        return n
    if not dataclasses.is_dataclass(expression):
        return expression
    changes = {
        item.name: _substitute(getattr(expression, item.name), n)
        for item in dataclasses.fields(expression)
        if isinstance(getattr(expression, item.name), (Var, BinaryExpr, UnaryExpr, CastExpr))
    }
    return dataclasses.replace(expression, **changes)


def _expression_text(expression) -> str:
    b = ProgramBuilder("e", num_threads=32)
    b.emit(DeclareScalar(output=Var("e", expression.type), init=expression))
    line = print_program(b.build()).splitlines()[1]
    return line.split("declare(init=", 1)[1][:-1]


def _parse_expression(text: str):
    program = parse(f"kernel e() num_threads=32 {{\n  %e: int32 = declare(init={text})\n}}")
    return program.body[0].init


def test_names_stay_unique_and_readable():
    b = ProgramBuilder("names", num_threads=32)
    values = [b.emit_output(AllocRegister, name, dtype=int32, shape=(4,))
              for name in ("x", "x", "x.1", "x", "", "a b")]  # fmt: skip
    b.emit(DeclareScalar(output=Var("s", ScalarType(int32)), init=ZERO))
    text = print_program(b.build())
    names = [line.split(":")[0].strip() for line in text.splitlines()[1:-1]]
    assert names == ["%x", "%x.1", "%x.1.1", "%x.2", "%v", "%a_b", "%s"]
    assert len(values) == 6
    round_trip(b.build())


def test_kernel_names_that_are_not_identifiers_are_quoted():
    program = Program("my kernel", (), 64, ())
    assert print_program(program) == 'kernel "my kernel"() num_threads=64 {\n}'
    assert round_trip(program).name == "my kernel"


def test_low_bit_dtypes_and_pointers_round_trip():
    b = ProgramBuilder("low_bit", num_threads=32)
    for dtype in (int4, uint3, float6_e3m2, e8m0, ue4m3, boolean):
        pointer = b.pointer_param(f"p_{dtype}", dtype)
        b.emit_output(GlobalView, "view", pointer=pointer, shape=(Const(32),), strides=(ONE,))
    round_trip(b.build())


def test_comments_and_whitespace_are_ignored():
    program = parse(
        "# a kernel\nkernel k(%n: int32) num_threads=32 {  # body\n  %s: int32=declare( init = %n )\n}\n"
    )
    assert program.body[0].loc is None and program.body[0].init is program.params[0].variable


def test_header_facts_print_parse_and_count_in_equality():
    b = ProgramBuilder("k", num_threads=128)
    b.pointer_param("x", float32)
    program = dataclasses.replace(b.build(), target="sm_90", shared_bytes=4096)
    text = print_program(program)
    assert text == 'kernel k(%x: ptr<float32>) num_threads=128 target="sm_90" shared_bytes=4096 {\n}'
    parsed = round_trip(program)
    assert (parsed.target, parsed.shared_bytes) == ("sm_90", 4096)
    assert parsed != dataclasses.replace(program, target="sm_80")
    assert parsed != dataclasses.replace(program, shared_bytes=None)
    assert print_program(dataclasses.replace(program, target=None)).startswith(
        "kernel k(%x: ptr<float32>) num_threads=128 shared_bytes=4096 {"
    )


def test_cast_rounding_is_written_in_the_angle_brackets():
    n = Var("n", ScalarType(int32))
    assert _expression_text(CastExpr(Const(2.5), int32, "zero")) == 'cast<int32, "zero">(2.5)'
    assert _expression_text(CastExpr(BinaryExpr("max", n, n), int64)) == "cast<int64>(max(%n, %n))"
    assert _parse_expression('cast<int32, "zero">(2.5)') == CastExpr(Const(2.5), int32, "zero")
