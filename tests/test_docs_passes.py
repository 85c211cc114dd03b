"""The code in docs/passes.md runs as written: its pass, and its FileCheck test of that pass."""

import pathlib
import re

import torch

from tilevm import ir
from tilevm.runtime.reference import execute

DOC = pathlib.Path(__file__).parent.parent / "docs" / "passes.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_documented_pass_and_its_test_run():
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # check_pass raises if a check does not hold
    # The pass keeps what the program computes: n * 8 and n << 3 wrap alike, checked through the executor.
    program = ir.parse(
        """kernel k(%out: ptr<int8>, %n: int8) num_threads=32 {
  %v: global<int8, [1], strides=[1]> = global_view(pointer=%out, shape=[1], strides=[1])
  %t: register<int8, [1]> = alloc_register(dtype=int8, shape=[1], init=%n * 8:int8)
  store_global(tensor=%v, value=%t, offsets=[0], dims=[0])
}"""
    )
    shifted = ir.verify(namespace["multiply_by_shifting"](program))
    assert "init=%n << 3:int8" in ir.print_program(shifted)
    for n in range(-128, 128):
        out = torch.zeros(1, dtype=torch.int8)
        execute(shifted, [out, n], grid=(1,))
        assert out.item() == (n * 8 + 128) % 256 - 128
