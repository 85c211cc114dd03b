"""The verifier: each rule broken once, with the message and the source line asserted."""

import pytest

from tilevm import ir
from tilevm.dtypes import float16, float32, int32, int64
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import (
    AllocRegister,
    Binary,
    BinaryExpr,
    Const,
    DeclareScalar,
    For,
    Param,
    Program,
    ScalarType,
    Scope,
    TileType,
    Var,
)
from tilevm.layout import replicated, spatial

HERE = SourceLocation("kernel.py", 42, 8)


def register(dtype, shape, layout=None):
    return Var("t", TileType(dtype, shape, Scope.REGISTER, layout))


def program(*body, params=(), num_threads=128):
    return Program("k", tuple(Param(p) for p in params), num_threads, tuple(body))


def verifier_error(prog) -> CompilationError:
    with pytest.raises(CompilationError) as caught:
        ir.verify(prog)
    return caught.value


def test_a_valid_program_passes_unchanged():
    tile = register(float32, (4, 8))
    prog = program(
        AllocRegister(output=tile, dtype=float32, shape=(4, 8), init=Const(1.0, float32), loc=HERE)
    )
    assert ir.verify(prog) is prog


def test_output_type_must_be_what_the_rule_gives():
    wrong = register(float16, (4, 8))
    error = verifier_error(program(AllocRegister(output=wrong, dtype=float32, shape=(4, 8), loc=HERE)))
    assert "expected register tile float32[4, 8]" in error.message
    assert error.location == HERE


def test_type_rule_of_an_instruction():
    a, b = register(float32, (4, 8)), register(float32, (3, 8))
    body = (
        AllocRegister(output=a, dtype=float32, shape=(4, 8)),
        AllocRegister(output=b, dtype=float32, shape=(3, 8)),
        Binary(output=register(float32, (4, 8)), op="add", lhs=a, rhs=b, loc=HERE),
    )
    error = verifier_error(program(*body))
    assert "do not broadcast" in error.message and error.message.startswith("binary:")
    assert error.location == HERE


def test_use_before_definition():
    n = Var("n", ScalarType(int32))
    error = verifier_error(program(DeclareScalar(output=Var("m", ScalarType(int32)), init=n, loc=HERE)))
    assert "n is used where it is not defined" in error.message
    assert error.location == HERE


def test_loop_values_are_not_visible_after_the_loop():
    i = Var("i", ScalarType(int32))
    inner = Var("inner", ScalarType(int32))
    loop = For(variable=i, start=Const(0), stop=Const(4), step=Const(1),
               body=(DeclareScalar(output=inner, init=i),))  # fmt: skip
    after = DeclareScalar(output=Var("after", ScalarType(int32)), init=inner, loc=HERE)
    error = verifier_error(program(loop, after))
    assert "inner is used where it is not defined" in error.message
    assert error.location == HERE


def test_a_variable_is_defined_once():
    m = Var("m", ScalarType(int32))
    error = verifier_error(
        program(DeclareScalar(output=m, init=Const(1)), DeclareScalar(output=m, init=Const(2), loc=HERE))
    )
    assert "defined twice" in error.message
    assert error.location == HERE


def test_scalar_operands_share_a_dtype():
    n = Var("n", ScalarType(int64))
    bad = BinaryExpr("add", n, Const(1, int32))
    error = verifier_error(
        program(DeclareScalar(output=Var("m", ScalarType(int64)), init=bad, loc=HERE), params=(n,))
    )
    assert "'add' of a int64 and a int32" in error.message
    assert error.location == HERE


def test_layout_must_have_the_tile_shape():
    tile = register(float32, (4, 8), layout=spatial(4, 8).local(1, 2))
    error = verifier_error(program(AllocRegister(output=tile, dtype=float32, shape=(4, 8), loc=HERE)))
    assert "has shape [4, 16], the tile [4, 8]" in error.message


def test_layout_must_spread_over_the_kernel_threads():
    tile = register(float32, (4, 8), layout=spatial(4, 8))
    error = verifier_error(
        program(AllocRegister(output=tile, dtype=float32, shape=(4, 8), loc=HERE), num_threads=64)
    )
    assert "spreads over 32 threads, the kernel has 64" in error.message
    assert error.location == HERE


def test_view_needs_both_layouts_or_neither():
    source = register(int32, (32, 1), layout=spatial(32, 1))
    result = register(float16, (32, 2))
    body = (
        AllocRegister(output=source, dtype=int32, shape=(32, 1)),
        ir.View(output=result, operand=source, dtype=float16, shape=(32, 2), loc=HERE),
    )
    error = verifier_error(program(*body, num_threads=32))
    assert "layouts of both sides or of neither" in error.message
    assert error.location == HERE


def test_view_layouts_must_hold_the_same_bits_per_thread():
    # 1024 bits either way, but each thread holds one int32 (32 bits) before and four float16 (64 bits)
    # after, the 16 x 4 tile being held twice over (replicated over 2 threads)
    source = register(int32, (32, 1), layout=spatial(32, 1))
    result = register(float16, (16, 4), layout=replicated(2).spatial(16, 1).local(1, 4))
    body = (
        AllocRegister(output=source, dtype=int32, shape=(32, 1)),
        ir.View(output=result, operand=source, dtype=float16, shape=(16, 4), loc=HERE),
    )
    error = verifier_error(program(*body, num_threads=32))
    assert "each thread holds 32 bits before and 64 after" in error.message
    assert error.location == HERE
