"""The parser on malformed text: seeded random mutations of printed programs (tokens or characters deleted,
duplicated, swapped or replaced; the text cut short) either parse to a program that round-trips, or raise a
``CompilationError`` located in the text. Nothing else may escape: no KeyError, no lark exception."""

from __future__ import annotations

import functools
import pathlib
import random
import re
import runpy

import pytest
import torch
from test_ir_text_instruction_sets import THREAD_TEST, build

from tilevm.errors import CompilationError
from tilevm.ir import TILE_IR, InstructionSet, check_round_trip, parse, print_program

CONTROL_FLOW = """\
kernel "flow"(%p: ptr<uint4> divisibility=16, %n: int32) num_threads=64 target="sm_90" shared_bytes=1024 {
  %v: global<uint4, [%n], strides=[1]> = global_view(pointer=%p, shape=[%n], strides=[1])  # loc("\\f", 3, 4)
  %s: shared<uint4, [64], shared((64,), strides=(1,))> = alloc_shared(dtype=uint4, shape=[64])
  %total: int64 = declare(init=0:int64)
  for %i: int32 in range(0, %n // 64, 1) unroll=2 {
    %t: register<uint4, [64], spatial(64)> = load_global(tensor=%v, offsets=[%i * 64], shape=[64], dims=[0])
    set(variable=%total, value=%total + cast<int64, "zero">(max(%i, grid_size(1))))
    if (%i % 2) == 0 {
      store_shared(tensor=%s, value=%t)
    } else {
      while abs(-1.5:float16) < 2.0:float16 {
        sync()
      }
    }
  }
}"""

# Tokens of the text form: names, %values, numbers, strings, single characters (the rest).
_TOKEN = re.compile(r'%[\w.]+|[\w.:-]+|"(?:[^"\\]|\\.)*"|\s+|.')
_NOISE = [*'{}()<>[],=:%"\\#.-+*/0aZ_ \n', "kernel", "none", "true", "cast<", "# loc(", "%x", "::"]


def _softmax_text() -> str:
    """The Tile IR of the softmax example, as the front end gives it."""
    example = runpy.run_path(str(pathlib.Path(__file__).parent.parent / "examples" / "softmax.py"))
    rows = torch.zeros(3, 100)
    return print_program(example["softmax"].ir(rows, rows, BLOCK=128))


@functools.cache
def _seeds() -> tuple[tuple[str, InstructionSet], ...]:
    return (
        (CONTROL_FLOW, TILE_IR),
        (print_program(build(), THREAD_TEST), THREAD_TEST),
        (_softmax_text(), TILE_IR),
    )


def _mutate(text: str, rng: random.Random) -> str:
    tokens = _TOKEN.findall(text)
    for _ in range(rng.choice((1, 1, 2, 3))):
        kind = rng.randrange(6)
        i, j = rng.randrange(len(tokens)), rng.randrange(len(tokens))
        if kind == 0:
            del tokens[i]
        elif kind == 1:
            tokens.insert(i, tokens[i])
        elif kind == 2:
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == 3:
            tokens[i] = rng.choice(_NOISE)
        elif kind == 4:
            position = rng.randrange(len(tokens[i]) + 1)
            tokens[i] = (
                tokens[i][:position] + rng.choice(_NOISE) * rng.randrange(2) + tokens[i][position + 1 :]
            )
        else:
            tokens = tokens[:i]
        if not tokens:
            break
    return "".join(tokens)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_programs_parse_and_round_trip_or_raise_a_located_error(seed):
    rng = random.Random(seed)
    outcomes = {"parsed": 0, "error": 0}
    for text, instruction_set in _seeds():
        assert check_round_trip(parse(text, instruction_set), instruction_set)
        for _ in range(160):
            mutated = _mutate(text, rng)
            try:
                program = parse(mutated, instruction_set)
            except CompilationError as error:
                lines = mutated.splitlines() or [""]
                location = error.location
                assert location.file == "<tile ir>" and 1 <= location.line <= len(lines), mutated
                assert 0 <= location.column <= len(lines[location.line - 1]), mutated
                outcomes["error"] += 1
                continue
            check_round_trip(program, instruction_set)
            outcomes["parsed"] += 1
    # the mutations reach both outcomes: the test exercises the reader as well as the syntax errors
    assert outcomes["parsed"] > 20 and outcomes["error"] > 240, outcomes
