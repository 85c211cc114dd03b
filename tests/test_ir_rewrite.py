"""The field-driven walker and rewriter: one form per node class, walks that reach everything, rebuilds that
keep what they do not change, and substitution that reaches nested bodies and global types."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_ir_text import build_everything

from tilevm import ir
from tilevm.dtypes import float32, int32
from tilevm.ir import (
    EXPRESSION_CLASSES,
    BinaryExpr,
    Const,
    Expr,
    For,
    GlobalType,
    If,
    Instruction,
    ScalarType,
    Var,
    While,
    parse,
    print_program,
    verify,
)
from tilevm.ir.rewrite import (
    TYPE_CLASSES,
    Rewriter,
    bodies,
    defined_variables,
    map_expressions,
    map_instructions,
    node_form,
    operands,
    rebuild,
    substitute,
    walk_expressions,
    walk_instructions,
)
from tilevm.ir.thread import THREAD_IR
from tilevm.passes.filecheck import filecheck
from tilevm.runtime.reference import execute


def tilevm_subclasses(cls):
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("tilevm."):
            yield sub
        yield from tilevm_subclasses(sub)


#: the statements' nested bodies and the variables they define for them, as the IR's spec states them
STATEMENT_FIELDS = {
    For: {"bodies": ("body",), "definitions": ("variable",)},
    While: {"bodies": ("body",), "definitions": ()},
    If: {"bodies": ("then_body", "else_body"), "definitions": ()},
}


def reference_bodies(instruction):
    names = STATEMENT_FIELDS.get(type(instruction), {}).get("bodies", ())
    return tuple(getattr(instruction, name) for name in names)


def reference_walk(body):
    """Program order through the bodies that ``STATEMENT_FIELDS`` names."""
    for instruction in body:
        yield instruction
        for nested in reference_bodies(instruction):
            yield from reference_walk(nested)


def reference_operands(node):
    """The expressions in ``node``'s fields outside its definitions, found from the fields' values (the
    rewriter reads the annotations)."""
    defined = getattr(type(node), "defined_fields", ())
    found = []
    for item in dataclasses.fields(node):
        value = getattr(node, item.name)
        if item.name not in defined:
            found += [
                element
                for element in (value if isinstance(value, tuple) else (value,))
                if isinstance(element, Expr)
            ]
    return tuple(found)


def reference_expressions(expression):
    yield expression
    for child in reference_operands(expression):
        yield from reference_expressions(child)


def test_every_node_class_has_a_form():
    assert set(tilevm_subclasses(Expr)) == set(EXPRESSION_CLASSES) | set(THREAD_IR.expressions)
    for cls in (*tilevm_subclasses(Instruction), *tilevm_subclasses(Expr), *TYPE_CLASSES):
        form = node_form(cls)
        assert [name for name, _ in form.roles] == [item.name for item in dataclasses.fields(cls)]


def test_a_value_that_is_no_node_is_named_in_the_error():
    @dataclasses.dataclass(frozen=True)
    class Orphan:
        value: Expr

    with pytest.raises(TypeError, match="Orphan is no instruction, expression or type dataclass"):
        list(walk_expressions(Orphan(value=Const(1))))


def test_field_roles_agree_with_the_spec_and_the_field_values():
    program = build_everything()
    instructions = list(walk_instructions(program.body))
    assert instructions == list(reference_walk(program.body))
    assert {type(instruction) for instruction in instructions} == set(ir.INSTRUCTION_CLASSES)
    for instruction in instructions:
        name = type(instruction).__name__
        assert bodies(instruction) == reference_bodies(instruction), name
        assert operands(instruction) == reference_operands(instruction), name
        statement_definitions = STATEMENT_FIELDS.get(type(instruction), {}).get("definitions", ())
        expected_definitions = [getattr(instruction, "output", None)]
        expected_definitions += [getattr(instruction, field) for field in statement_definitions]
        assert defined_variables(instruction) == tuple(v for v in expected_definitions if v is not None), name
        for expression in walk_expressions(instruction):
            assert operands(expression) == reference_operands(expression), type(expression).__name__


def test_walk_expressions_reaches_every_operand_sub_expression_and_global_type():
    program = build_everything()
    expected = []
    for instruction in reference_walk(program.body):
        output = getattr(instruction, "output", None)
        if output is not None and isinstance(output.type, GlobalType):  # the output's type comes first
            for extent in (*output.type.shape, *output.type.strides):
                expected += reference_expressions(extent)
        for operand in reference_operands(instruction):
            expected += reference_expressions(operand)
    assert [id(e) for e in walk_expressions(program)] == [id(e) for e in expected]


def test_identity_rewrites_keep_every_node():
    program = build_everything()
    rewritten = Rewriter(expression=lambda e: e, instruction=lambda i: i).program(program)
    assert rewritten.body is program.body
    assert all(new.variable is old.variable for new, old in zip(rewritten.params, program.params))


def test_rebuild_replaces_operands_and_bodies_and_keeps_the_rest():
    program = parse(
        """kernel k(%n: int32) num_threads=32 {
  for %i: int32 in range(0, %n, 1) unroll=4 {  # loc("k.py", 3, 4)
    %x: int32 = declare(init=%i * 2)
  }
}"""
    )
    loop = program.body[0]
    replaced = rebuild(loop, operand=lambda e: Const(8) if e is loop.stop else e, body=lambda body: ())
    assert replaced.stop == Const(8) and replaced.body == () and replaced.unroll == 4
    assert replaced.start is loop.start and replaced.variable is loop.variable and replaced.loc == loop.loc
    assert loop.stop is program.params[0].variable and len(loop.body) == 1  # the original is unchanged
    assert rebuild(loop) is loop


def test_map_instructions_can_expand_and_delete():
    source = """kernel k(%n: int32) num_threads=32 {
  if %n > 0 {
    sync()
    %x: int32 = declare(init=%n)
  }
}"""

    def twice_sync_no_declare(instruction):
        if isinstance(instruction, ir.Sync):
            return (instruction, ir.Sync())
        return () if isinstance(instruction, ir.DeclareScalar) else instruction

    result = verify(map_instructions(parse(source), twice_sync_no_declare))
    filecheck(
        print_program(result), "CHECK: if %N > 0 {\nCHECK-NEXT: sync()\nCHECK-NEXT: sync()\nCHECK-NEXT: }"
    )


def test_a_rewritten_program_keeps_its_shared_memory_plan():
    source = """kernel k(%n: int32) num_threads=32 shared_bytes=4096 {
  %x: int32 = declare(init=%n + 0)
}"""
    result = map_expressions(parse(source), lambda e: e.lhs if isinstance(e, BinaryExpr) else e)
    assert result.shared_bytes == 4096
    filecheck(
        print_program(result),
        "CHECK: kernel k(%n: int32) num_threads=32 shared_bytes=4096 {\nCHECK-NEXT: declare(init=%n)",
    )


def test_map_expressions_works_bottom_up_everywhere():
    program = parse(
        """kernel k(%x: ptr<float32>, %n: int32) num_threads=32 {
  %v: global<float32, [%n + 1], strides=[1]> = global_view(pointer=%x, shape=[%n + 1], strides=[1])
  while %n < (2 + 1) {
    %t: register<float32, [4]> = load_global(tensor=%v, offsets=[1 + 1], shape=[4], dims=[0])
  }
}"""
    )
    seen = []

    def plus_to_minus(expression):
        seen.append(type(expression).__name__)
        if isinstance(expression, BinaryExpr) and expression.op == "add":
            return BinaryExpr("sub", expression.lhs, expression.rhs)
        return expression

    result = verify(map_expressions(program, plus_to_minus))
    filecheck(
        print_program(result),
        """
        CHECK: %V: global<float32, [%N - 1], strides=[1]> = global_view(pointer=%X, shape=[%N - 1]
        CHECK: while %N < (2 - 1) {
        CHECK: load_global(tensor=%V, offsets=[1 - 1]
        """,
    )
    assert seen.index("Const") < seen.index("BinaryExpr")  # children first


SUBSTITUTION_SOURCE = """kernel k(%x: ptr<float32>, %n: int32, %m: int32) num_threads=32 {
  %v: global<float32, [%n], strides=[1]> = global_view(pointer=%x, shape=[%n], strides=[1])
  for %i: int32 in range(0, %m, 1) {
    if %i < %n {
      %t: register<float32, [4]> = load_global(tensor=%v, offsets=[%i * 4], shape=[4], dims=[0])
      %u: register<float32, [4]> = binary(op="add", lhs=%t, rhs=1.0)
      store_global(tensor=%v, value=%u, offsets=[%i * 4], dims=[0])
    }
  }
}"""


def test_substitute_reaches_nested_bodies_and_global_types():
    program = parse(SUBSTITUTION_SOURCE)
    n = program.params[1].variable
    result = verify(substitute(program, {n: Const(12)}))
    filecheck(
        print_program(result),
        """
        CHECK: %V: global<float32, [12], strides=[1]> = global_view(pointer=%X, shape=[12], strides=[1])
        CHECK-NOT: {{%n\\b}}
        CHECK: if %I < 12 {
        CHECK: load_global(tensor=%V,
        CHECK: store_global(tensor=%V,
        CHECK-NOT: {{%n\\b}}
        """,
    )
    old_view, new_view = program.body[0].output, result.body[0].output
    assert new_view is not old_view and new_view.type.shape == (Const(12),)
    uses = [
        i.tensor for i in walk_instructions(result.body) if isinstance(i, (ir.LoadGlobal, ir.StoreGlobal))
    ]
    assert len(uses) == 2 and all(use is new_view for use in uses)
    # Substituting the launch's value of n changes nothing the program computes.
    data = torch.arange(16, dtype=torch.float32)
    expected = data.clone()
    expected[:12] += 1
    for variant, arguments in ((program, (data.clone(), 12, 4)), (result, (data.clone(), 12, 4))):
        execute(variant, list(arguments), grid=(1,))
        assert torch.equal(arguments[0], expected)


def test_substitute_an_assigned_variable_needs_a_variable():
    program = parse(
        """kernel k(%n: int32) num_threads=32 {
  %x: int32 = declare(init=%n)
  set(variable=%x, value=%x + 1)
}"""
    )
    x = program.body[0].output
    with pytest.raises(TypeError, match="set's variable must stay a variable; substitute gave it Const"):
        substitute(program, {x: Const(3)})
    renamed = Var("y", x.type)
    with pytest.raises(TypeError, match="cannot substitute a float32 value for x: int32"):
        substitute(program, {x: Const(1.0, float32)})
    result = substitute(program, {x: renamed})
    assert result.body[1].variable is renamed and result.body[1].value.lhs is renamed


def test_substituted_loop_bounds_run_the_same():
    program = parse(SUBSTITUTION_SOURCE)
    m = program.params[2].variable
    result = substitute(program, {m: BinaryExpr("add", Const(1), Const(2, int32))})
    loop = next(i for i in walk_instructions(result.body) if isinstance(i, For))
    assert loop.stop == BinaryExpr("add", Const(1), Const(2))
    data = torch.arange(16, dtype=torch.float32)
    execute(result, [data, 16, 100], grid=(1,))  # m is ignored now: three iterations, 12 elements
    assert torch.equal(data, torch.arange(16, dtype=torch.float32) + (torch.arange(16) < 12))


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class SplitHalves(Instruction):
    """A stand-in for an instruction with several results (an mma gives four registers)."""

    outputs: tuple[Var, ...]
    operand: Expr
    opname = "split_halves"
    defined_fields = ("outputs",)


def test_instructions_with_several_outputs_need_no_change_here():
    n, first, second = (Var(name, ScalarType(int32)) for name in ("n", "first", "second"))
    split = SplitHalves(outputs=(first, second), operand=BinaryExpr("add", n, Const(0)))
    total = ir.DeclareScalar(output=Var("total", ScalarType(int32)), init=BinaryExpr("add", first, second))
    program = ir.Program("k", (ir.Param(n),), 32, (split, total))
    assert defined_variables(split) == (first, second)
    assert [type(e).__name__ for e in walk_expressions(program)] == [
        "BinaryExpr",
        "Var",
        "Const",
        "BinaryExpr",
        "Var",
        "Var",
    ]
    result = substitute(program, {first: Const(1), n: Const(5)})
    assert result.body[0].outputs == (first, second)
    assert result.body[0].operand == BinaryExpr("add", Const(5), Const(0))
    assert result.body[1].init == BinaryExpr("add", Const(1), second)
