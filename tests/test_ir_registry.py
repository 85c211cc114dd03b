"""Every instruction is defined once with all its parts: a name in the text form, a type rule, a meaning in
the reference executor."""

import dataclasses
import re

import pytest

from tilevm import ir
from tilevm.dtypes import boolean, float32, int32, int64
from tilevm.ir import (
    BinaryExpr,
    BlockIndex,
    CastExpr,
    Const,
    GridSize,
    IRTypeError,
    ScalarType,
    UnaryExpr,
    Var,
)
from tilevm.ir.expr import UNARY_OPS
from tilevm.ir.inst import Instruction
from tilevm.ir.thread import THREAD_IR
from tilevm.lang import math_builtins
from tilevm.runtime.reference import HANDLERS

#: instructions with no operands and no attributes: nothing for a type rule to check
WITHOUT_OPERANDS = {ir.CopyAsyncCommit, ir.Sync}


def tilevm_subclasses(cls):
    """Subclasses defined in tilevm itself (tests define throwaway ones, which must not count)."""
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("tilevm."):
            yield sub
        yield from tilevm_subclasses(sub)


def test_every_instruction_class_is_listed():
    assert set(tilevm_subclasses(Instruction)) == set(ir.INSTRUCTION_CLASSES) | set(THREAD_IR.instructions)


def test_names_are_unique_and_fields_are_keyword_only():
    names = [cls.opname for cls in ir.INSTRUCTION_CLASSES]
    assert all(names) and len(set(names)) == len(names)
    for cls in ir.INSTRUCTION_CLASSES:
        assert all(item.kw_only for item in dataclasses.fields(cls)), cls.__name__


def test_every_instruction_has_a_type_rule_and_an_executor_handler():
    for cls in ir.INSTRUCTION_CLASSES:
        has_fields = [item.name for item in dataclasses.fields(cls) if item.name != "loc"]
        if cls not in WITHOUT_OPERANDS:
            assert has_fields and cls.result_type is not Instruction.result_type, cls.__name__
        assert cls in HANDLERS, cls.__name__


def test_unary_builtins_are_the_ir_unary_ops_python_has_no_operator_for():
    python_operators = {"neg", "not"}  # -x and ~x
    for op in UNARY_OPS:
        builtin = getattr(math_builtins, op, None)
        assert (builtin is None) == (op in python_operators), op
        assert builtin is None or builtin.__name__ == op


N, X = Var("n", ScalarType(int32)), Var("x", ScalarType(float32))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (BinaryExpr("add", N, Const(1, int64)), "'add' of a int32 and a int64; cast one of them"),
        (BinaryExpr("mod", X, X), "'mod' needs integer operands, got float32"),
        (BinaryExpr("div", N, N), "'div' needs floating-point operands, got int32; use '//' (floordiv)"),
        (BinaryExpr("pow", N, N), "unknown binary op 'pow'"),
        (UnaryExpr("exp", N), "'exp' needs floating-point operands, got int32"),
        (UnaryExpr("not", X), "'not' needs integer operands, got float32"),
        (UnaryExpr("cube", X), "unknown unary op 'cube'"),
        (CastExpr(X, int32, "up"), "unknown rounding 'up'; expected one of nearest, zero"),
        (BlockIndex(3), "block_index's axis is 0, 1 or 2, got 3"),
        (GridSize(-1), "grid_size's axis is 0, 1 or 2, got -1"),
    ],
)
def test_scalar_type_rules_refuse(expression, message):
    with pytest.raises(IRTypeError, match=re.escape(message)):
        expression.result_type()


@pytest.mark.parametrize(
    ("expression", "dtype"),
    [
        (BinaryExpr("lt", X, X), boolean),
        (BinaryExpr("shl", N, N), int32),
        (UnaryExpr("not", Const(True)), boolean),
        (CastExpr(N, float32, "zero"), float32),
        (GridSize(2), int32),
    ],
)
def test_scalar_type_rules_give_the_type(expression, dtype):
    assert expression.result_type() == ScalarType(dtype)
