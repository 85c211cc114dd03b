"""hoist_loop_invariants: small IR in, the pass, CHECK lines out; and a kernel whose operands are converted
once, run in the interpreter against torch."""

import pathlib

import torch

from tilevm.passes.filecheck import check_pass
from tilevm.passes.hoist_loop_invariants import hoist_loop_invariants

HEADER = "kernel k(%x: ptr<float32>, %n: int32) num_threads=2 {\n"
VIEW = "  %v: global<float32, [4], strides=[1]> = global_view(pointer=%x, shape=[4], strides=[1])\n"
COLUMNS = "register<float32, [4], spatial(2).local(2)>"
ROWS = "register<float32, [4], local(2).spatial(2)>"
A = f"  %a: {COLUMNS} = load_global(tensor=%v, offsets=[0], shape=[4], dims=[0])\n"


def hoist(body: str, checks: str) -> None:
    check_pass(hoist_loop_invariants, HEADER + VIEW + A + body + "\n}", checks)


def test_a_chain_of_invariant_instructions_leaves_nested_loops():
    hoist(
        f"""  for %i: int32 in range(0, %n, 1) {{
    for %j: int32 in range(0, %n, 1) {{
      %t: register<float32, [4], spatial(2).local(2)> = binary(op="mul", lhs=%a, rhs=2.0)
      %b: {ROWS} = convert_layout(operand=%t)
      store_global(tensor=%v, value=%b, offsets=[0], dims=[0])
    }}
  }}""",
        """
        CHECK: %A: register<float32, [4], spatial(2).local(2)> = load_global(
        CHECK-NEXT: %T: register<float32, [4], spatial(2).local(2)> = binary(op="mul", lhs=%A, rhs=2.0)
        CHECK-NEXT: %B: register<float32, [4], local(2).spatial(2)> = convert_layout(operand=%T)
        CHECK-NEXT: for %I: int32 in range(0, %N, 1) {
        CHECK-NEXT: for %J: int32 in range(0, %N, 1) {
        CHECK-NEXT: store_global(tensor=%V, value=%B,
        """,
    )


def test_what_depends_on_the_iteration_stays():
    hoist(
        f"""  %acc: {COLUMNS} = alloc_register(dtype=float32, shape=[4], init=0.0)
  for %i: int32 in range(0, %n, 1) {{
    %l: {COLUMNS} = load_global(tensor=%v, offsets=[%i], shape=[4], dims=[0])
    %b: {ROWS} = convert_layout(operand=%l)
    %c: {ROWS} = convert_layout(operand=%acc)
    %s: {ROWS} = binary(op="add", lhs=%b, rhs=%c)
    store_global(tensor=%v, value=%s, offsets=[0], dims=[0])
    %d: register<float32, [4], spatial(2).local(2)> = binary(op="add", lhs=%acc, rhs=%a)
    assign(destination=%acc, value=%d)
  }}""",
        """
        CHECK: for %I: int32 in range(0, %N, 1) {
        CHECK-NEXT: %L: register<float32, [4], spatial(2).local(2)> = load_global(
        CHECK-NEXT: convert_layout(operand=%L)
        CHECK-NEXT: convert_layout(operand=%ACC)
        CHECK-NEXT: binary(op="add"
        CHECK-NEXT: store_global(
        CHECK-NEXT: binary(op="add", lhs=%ACC, rhs=%A)
        CHECK-NEXT: assign(
        """,
    )


def test_an_output_that_an_inner_loop_changes_stays_in_the_outer_loop():
    # ``t = a * 2`` then ``t = t + 1`` in an inner loop: each outer iteration starts again from ``a * 2``
    hoist(
        f"""  for %i: int32 in range(0, %n, 1) {{
    %t: {COLUMNS} = binary(op="mul", lhs=%a, rhs=2.0)
    for %j: int32 in range(0, %n, 1) {{
      %u: {COLUMNS} = binary(op="add", lhs=%t, rhs=1.0)
      assign(destination=%t, value=%u)
    }}
    store_global(tensor=%v, value=%t, offsets=[0], dims=[0])
  }}""",
        """
        CHECK: for %I: int32 in range(0, %N, 1) {
        CHECK-NEXT: %T: register<float32, [4], spatial(2).local(2)> = binary(op="mul", lhs=%A, rhs=2.0)
        CHECK-NEXT: for %J: int32 in range(0, %N, 1) {
        """,
    )


def test_a_division_that_can_fail_stays():
    # ``q = a // b`` in a loop of no iteration must not divide: only the loop may run it
    check_pass(
        hoist_loop_invariants,
        """kernel k(%x: ptr<int32>, %n: int32) num_threads=2 {
  %v: global<int32, [4], strides=[1]> = global_view(pointer=%x, shape=[4], strides=[1])
  %a: register<int32, [4], spatial(2).local(2)> = load_global(tensor=%v, offsets=[0], shape=[4], dims=[0])
  for %i: int32 in range(0, %n, 1) {
    %q: register<int32, [4], spatial(2).local(2)> = binary(op="floordiv", lhs=%a, rhs=%a)
    %r: register<int32, [4], spatial(2).local(2)> = binary(op="add", lhs=%a, rhs=%a)
    store_global(tensor=%v, value=%q, offsets=[0], dims=[0])
    store_global(tensor=%v, value=%r, offsets=[0], dims=[0])
  }
}""",
        """
        CHECK: %R: register<int32, [4], spatial(2).local(2)> = binary(op="add", lhs=%A, rhs=%A)
        CHECK-NEXT: for %I: int32 in range(0, %N, 1) {
        CHECK-NEXT: binary(op="floordiv", lhs=%A, rhs=%A)
        """,
    )


def test_a_branch_keeps_its_instructions():
    hoist(
        f"""  for %i: int32 in range(0, %n, 1) {{
    if %i == 1 {{
      %b: {ROWS} = convert_layout(operand=%a)
      store_global(tensor=%v, value=%b, offsets=[0], dims=[0])
    }}
  }}""",
        """
        CHECK: for %I: int32 in range(0, %N, 1) {
        CHECK-NEXT: if %I == 1 {
        CHECK-NEXT: convert_layout(operand=%A)
        """,
    )


def test_an_mma_loop_converts_its_operands_once(tmp_path: pathlib.Path) -> None:
    """Operands loaded before the loop and multiplied in it: their conversions to the mma fragments run
    once, before the loop, which is left with the dot and the accumulator's update; the result is the
    float64 product's."""
    from tilevm.ir import ConvertLayout, For
    from tilevm.ir.rewrite import walk_instructions

    source = tmp_path / "repeated_dot.py"
    source.write_text(
        """
import tilevm as tv


@tv.kernel(num_warps=4)
def repeated_dot(a: tv.Tensor[tv.float16, 2], b: tv.Tensor[tv.float16, 2], out: tv.Tensor[tv.float32, 2],
                 times: int):
    a_tile = tv.load_global(a, offsets=[0, 0], shape=[64, 16])
    b_tile = tv.load_global(b, offsets=[0, 0], shape=[16, 32])
    accumulator = tv.register_tensor(tv.float32, [64, 32], init=0.0)
    for _ in range(times):
        accumulator = tv.dot(a_tile, b_tile, accumulator)
    tv.store_global(out, accumulator, offsets=[0, 0])
"""
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("repeated_dot", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generator = torch.Generator().manual_seed(41)
    # quarters of small integers: every partial sum is exact in float32
    a = (torch.randint(-4, 5, (64, 16), generator=generator) / 4).half()
    b = (torch.randint(-4, 5, (16, 32), generator=generator) / 4).half()
    out = torch.full((64, 32), float("nan"))
    module.repeated_dot[(1,)](a, b, out, 5)
    assert torch.equal(out.double(), 5 * (a.double() @ b.double()))
    program = module.repeated_dot.ir(a, b, out, 5)
    (loop,) = [statement for statement in walk_instructions(program.body) if isinstance(statement, For)]
    inside = list(walk_instructions(loop.body))
    assert [type(statement).__name__ for statement in inside] == ["Dot", "AssignTensor"]
    assert any(isinstance(statement, ConvertLayout) for statement in program.body)
    # a loop of no iteration: the conversions run, the sum stays zero
    empty = torch.full((64, 32), float("nan"))
    module.repeated_dot[(1,)](a, b, empty, 0)
    assert torch.equal(empty, torch.zeros(64, 32))


def test_a_tile_restarted_each_outer_iteration_matches_python(tmp_path: pathlib.Path) -> None:
    """The kernel that the IR case above comes from, run in the interpreter against Python."""
    import importlib.util

    source = tmp_path / "restarted.py"
    source.write_text(
        """
import tilevm as tv


@tv.kernel(num_warps=1)
def restarted(x: tv.Tensor[tv.float32, 1], out: tv.Tensor[tv.float32, 2], n: int, m: int):
    a = tv.load_global(x, offsets=[0], shape=[32])
    for i in range(n):
        t = a * 2.0
        for j in range(m):
            t = t + 1.0
        tv.store_global(out, t, offsets=[i, 0], dims=[1])
"""
    )
    spec = importlib.util.spec_from_file_location("restarted", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = torch.randint(-4, 5, (32,), generator=torch.Generator().manual_seed(43)).float()
    out = torch.full((3, 32), float("nan"))
    module.restarted[(1,)](x, out, 3, 2)
    assert torch.equal(out, (x * 2 + 2).expand(3, 32))
