"""Printed names: a value bound to a Python name gets that name; a temporary is named by what it computes."""

import re

import torch

import tilevm as tv
from tilevm import ir


@tv.func
def scaled_exp(tile, factor):
    shifted = tile - 1.0
    return tv.exp(shifted) * factor


@tv.kernel(num_warps=1)
def named(x: tv.Tensor[tv.float16, 1], out: tv.Tensor[tv.float32, 1], n: int, BLOCK: tv.constexpr):
    acc = tv.register_tensor(tv.float32, [BLOCK], init=0.0)
    for start in range(0, n, BLOCK):
        tile = tv.load_global(x, offsets=[start], shape=[BLOCK])
        scores = tv.where(tile < 0.5, tv.exp(tile), 0.0)
        acc += tv.cast(scores, tv.float32)
    result = scaled_exp(acc, 2.0)
    tv.store_global(out, result, offsets=[0])


def definitions(text: str) -> dict[str, str]:
    """Printed name -> the instruction (with its op, if any) that defines it."""
    found = re.findall(r"^\s*%([\w.]+): .*? = (\w+)\((?:.*?op=\"(\w+)\")?", text, flags=re.MULTILINE)
    return {name: f"{opname}:{op}" if op else opname for name, opname, op in found}


def test_temporaries_are_named_by_what_they_compute():
    block, n = 8, 21
    x = (torch.arange(n) / n).half()
    text = ir.print_program(named.ir(x, torch.zeros(block), n, BLOCK=block))
    made_by_passes = {"global_view", "convert_layout"}  # layout inference names its conversions
    assert {name: kind for name, kind in definitions(text).items() if kind not in made_by_passes} == {
        "acc": "alloc_register",
        "tile": "load_global",
        "lt": "binary:lt",
        "exp": "unary:exp",
        "scores": "where",
        "cast": "cast",
        "acc.1": "binary:add",  # acc += ...: the value bound to acc
        "shifted": "binary:sub",  # inside the helper, bound to its own name
        "exp.1": "unary:exp",
        "result": "binary:mul",  # the helper's return value is bound to result by the caller
    }
    assert re.search(
        r"%scores: register<float16, \[8\], [^>]+> = "
        r"where\(condition=%lt, on_true=%exp, on_false=0\.0:float16\)",
        text,
    )


def test_named_kernel_computes_like_torch():
    block, n = 8, 21
    generator = torch.Generator().manual_seed(5)
    x = torch.rand(n, generator=generator).half()
    out = torch.full((block,), float("nan"))
    named[(1,)](x, out, n, BLOCK=block)
    padded = torch.nn.functional.pad(x.double(), (0, 3))  # positions past n read 0, and 0 < 0.5
    scores = torch.where(padded < 0.5, torch.exp(padded).half().double(), 0.0).reshape(-1, block)
    expected = (torch.exp(scores.sum(dim=0) - 1.0) * 2.0).float()
    # float16 exp of values in [0, 1) (half an ulp each), then float32 sums of 3 terms and one exp
    torch.testing.assert_close(out, expected, rtol=2e-3, atol=0)
