"""remove_dead_code: small IR in, the pass, CHECK lines out."""

import pytest
import torch

from tilevm import ir
from tilevm.passes.dead_code import EFFECTS, remove_dead_code
from tilevm.passes.filecheck import check_pass
from tilevm.runtime.reference import execute

HEADER = "kernel k(%x: ptr<float32>, %n: int32) num_threads=32 {\n"
VIEW = "  %v: global<float32, [%n], strides=[1]> = global_view(pointer=%x, shape=[%n], strides=[1])\n"


def eliminate(body: str, checks: str) -> None:
    check_pass(remove_dead_code, HEADER + body + "\n}", checks)


def test_every_instruction_class_has_an_effect():
    assert set(EFFECTS) == set(ir.INSTRUCTION_CLASSES)


def test_chains_of_unused_values_go_at_once():
    eliminate(
        VIEW
        + """  %a: int32 = declare(init=%n + 1)
  %b: int32 = declare(init=%a * 2)
  %t: register<float32, [4]> = alloc_register(dtype=float32, shape=[4], init=1.0)
  %u: register<float32, [4]> = binary(op="mul", lhs=%t, rhs=2.0)
  %w: register<float32, [4]> = unary(op="exp", operand=%u)
  %s: register<float32, [1]> = reduce(operand=%w, op="sum", dtype=float32, dim=0)
  %smem: shared<float32, [4]> = alloc_shared(dtype=float32, shape=[4])
  %r: register<float32, [4]> = load_shared(tensor=%smem)""",
        "CHECK: kernel k(\nCHECK-NEXT: }",
    )


def test_what_has_effects_stays_with_what_it_reads():
    eliminate(
        VIEW
        + """  %offset: int32 = declare(init=%n - 4)
  %dead: int32 = declare(init=%offset * 2)
  %unread: register<float32, [4]> = load_global(tensor=%v, offsets=[0], shape=[4], dims=[0])
  %t: register<float32, [4]> = load_global(tensor=%v, offsets=[%offset], shape=[4], dims=[0])
  %smem: shared<float32, [4]> = alloc_shared(dtype=float32, shape=[4])
  copy_async(destination=%smem, source=%v, offsets=[0], dims=[0])
  copy_async_commit()
  copy_async_wait(pending=0)
  sync()
  store_shared(tensor=%smem, value=%t)
  atomic_global(op="add", tensor=%v, value=%t, offsets=[0], dims=[0])
  store_global(tensor=%v, value=%t, offsets=[%offset], dims=[0])
  free_shared(tensor=%smem)""",
        """
        CHECK: %V: global<float32, [%N], strides=[1]> = global_view(
        CHECK-NEXT: %OFFSET: int32 = declare(init=%N - 4)
        CHECK-NOT: dead
        CHECK-NEXT: load_global(tensor=%V, offsets=[0]
        CHECK-NEXT: %T: register<float32, [4]> = load_global(tensor=%V, offsets=[%OFFSET]
        CHECK-NEXT: %SMEM: shared<float32, [4]> = alloc_shared(
        CHECK-NEXT: copy_async(destination=%SMEM, source=%V,
        CHECK-NEXT: copy_async_commit()
        CHECK-NEXT: copy_async_wait(pending=0)
        CHECK-NEXT: sync()
        CHECK-NEXT: store_shared(tensor=%SMEM, value=%T)
        CHECK-NEXT: atomic_global(op="add", tensor=%V, value=%T,
        CHECK-NEXT: store_global(tensor=%V, value=%T, offsets=[%OFFSET]
        CHECK-NEXT: free_shared(tensor=%SMEM)
        CHECK-NEXT: }
        """,
    )


def test_assignments_to_unread_variables_go_and_then_emptied_loops_and_branches():
    eliminate(
        """  %total: int32 = declare(init=0)
  %acc: register<float32, [4]> = alloc_register(dtype=float32, shape=[4], init=0.0)
  for %i: int32 in range(0, %n, 1) {
    set(variable=%total, value=%total + %i)
    if %i > 2 {
      %next: register<float32, [4]> = binary(op="add", lhs=%acc, rhs=1.0)
      assign(destination=%acc, value=%next)
    }
  }""",
        "CHECK: kernel k(\nCHECK-NEXT: }",
    )


def test_values_read_later_or_in_nested_bodies_stay():
    eliminate(
        VIEW
        + """  %acc: register<float32, [4]> = alloc_register(dtype=float32, shape=[4], init=0.0)
  %count: int32 = declare(init=0)
  %limit: int32 = declare(init=%n * 2)
  while %count < %limit {
    %next: register<float32, [4]> = binary(op="add", lhs=%acc, rhs=1.0)
    assign(destination=%acc, value=%next)
    set(variable=%count, value=%count + 1)
    %unused: int32 = declare(init=%count)
  }
  store_global(tensor=%v, value=%acc, offsets=[0], dims=[0])""",
        """
        CHECK: %ACC: register<float32, [4]> = alloc_register(
        CHECK-NEXT: %COUNT: int32 = declare(init=0)
        CHECK-NEXT: %LIMIT: int32 = declare(init=%N * 2)
        CHECK-NEXT: while %COUNT < %LIMIT {
        CHECK-NEXT: %NEXT: register<float32, [4]> = binary(op="add", lhs=%ACC, rhs=1.0)
        CHECK-NEXT: assign(destination=%ACC, value=%NEXT)
        CHECK-NEXT: set(variable=%COUNT, value=%COUNT + 1)
        CHECK-NEXT: }
        CHECK-NEXT: store_global(tensor=%V, value=%ACC,
        """,
    )


def test_a_while_loop_stays_even_when_its_body_is_dead():
    eliminate(
        """  while %n > 0 {
    %unused: int32 = declare(init=%n)
  }""",
        "CHECK: while %N > 0 {\nCHECK-NEXT: }",
    )


def test_a_program_without_dead_code_is_returned_unchanged():
    program = ir.parse(HEADER + VIEW + "  %t: register<float32, [4]> = load_global(tensor=%v, offsets=[0], "
                       "shape=[4], dims=[0])\n}")  # fmt: skip
    assert remove_dead_code(program) is program


def test_an_instruction_class_without_an_effect_is_named(monkeypatch):
    monkeypatch.delitem(EFFECTS, ir.Sync)
    with pytest.raises(TypeError, match=r"Sync has no entry in tilevm\.passes\.dead_code\.EFFECTS"):
        remove_dead_code(ir.parse(HEADER + "  sync()\n}"))


def test_the_program_computes_the_same_bits_without_its_dead_code():
    program = ir.parse(
        HEADER
        + VIEW
        + """  %acc: register<float32, [8]> = alloc_register(dtype=float32, shape=[8], init=0.0)
  %dead_acc: register<float32, [8]> = alloc_register(dtype=float32, shape=[8], init=1.0)
  %steps: int32 = declare(init=0)
  for %i: int32 in range(0, %n // 8, 1) {
    %t: register<float32, [8]> = load_global(tensor=%v, offsets=[%i * 8], shape=[8], dims=[0])
    %scaled: register<float32, [8]> = binary(op="mul", lhs=%t, rhs=0.5)
    %next: register<float32, [8]> = binary(op="add", lhs=%acc, rhs=%scaled)
    assign(destination=%acc, value=%next)
    %dead_next: register<float32, [8]> = binary(op="mul", lhs=%dead_acc, rhs=%t)
    assign(destination=%dead_acc, value=%dead_next)
    set(variable=%steps, value=%steps + 1)
  }
  store_global(tensor=%v, value=%acc, offsets=[0], dims=[0])
}"""
    )
    pruned = ir.verify(remove_dead_code(program))
    text = ir.print_program(pruned)
    assert "dead" not in text and "steps" not in text and text.count("assign(") == 1
    data = torch.randn(37, generator=torch.Generator().manual_seed(3))
    results = []
    for variant in (program, pruned):
        memory = data.clone()
        execute(variant, [memory, 37], grid=(1,))
        results.append(memory)
    assert torch.equal(results[0].view(torch.int32), results[1].view(torch.int32))
    # and what it computes: column sums of the first 32 values, halved (torch sums in another order: a
    # float32 rounding or two apart at most)
    expected = (data[:32].reshape(4, 8) * 0.5).sum(dim=0, dtype=torch.float32)
    torch.testing.assert_close(results[1][:8], expected, rtol=1e-6, atol=1e-6)


def test_an_unused_layout_conversion_goes_and_a_used_one_stays():
    eliminate(
        VIEW
        + """  %t: register<float32, [32]> = load_global(tensor=%v, offsets=[0], shape=[32], dims=[0])
  %unused: register<float32, [32], spatial(32)> = convert_layout(operand=%t)
  %spread: register<float32, [32], spatial(32)> = convert_layout(operand=%t)
  store_global(tensor=%v, value=%spread, offsets=[0], dims=[0])""",
        """
        CHECK: %T: register<float32, [32]> = load_global(
        CHECK-NEXT: %SPREAD: register<float32, [32], spatial(32)> = convert_layout(operand=%T)
        CHECK-NEXT: store_global(tensor=%V, value=%SPREAD,
        """,
    )
