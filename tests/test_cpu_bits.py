"""lop3, prmt, cvt_pack and atomics in the SIMT interpreter, checked against the PTX ISA's definitions written
out here bit by bit, and against torch's conversions and sequential numpy arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.cpu_programs import run

THREE_WORDS = """kernel k(%x: ptr<uint32>, %out: ptr<uint32>) num_threads=64 {{
  %t: int32 = let(value=thread_index())
  %a: uint32 = load(pointer=pointer_add(%x, %t * 12), width=4)
  %b: uint32 = load(pointer=pointer_add(%x, (%t * 12) + 4), width=4)
  %c: uint32 = load(pointer=pointer_add(%x, (%t * 12) + 8), width=4)
  %r: uint32 = {instruction}
  store(pointer=pointer_add(%out, %t * 4), value=%r)
}}"""


def _run_words(instruction, words):
    out = torch.zeros(64, dtype=torch.int32)
    run(THREE_WORDS.format(instruction=instruction), [torch.from_numpy(words.view(np.int32).copy()), out])
    return out.numpy().view(np.uint32)


def _words(seed):
    return np.random.default_rng(seed).integers(0, 2**32, size=(64, 3), dtype=np.uint64).astype(np.uint32)


@pytest.mark.parametrize("table", [0x00, 0xFF, 0xEA, 0x96, 0xF8, 0x1B, 0x6A, 0xCA])
def test_lop3_bit_i_is_the_table_bit_of_4a_plus_2b_plus_c(table):
    words = _words(table)
    got = _run_words(f"lop3(a=%a, b=%b, c=%c, table={table})", words)
    a, b, c = (words[:, k].astype(np.uint64) for k in range(3))
    expected = np.zeros(64, dtype=np.uint64)
    for bit in range(32):
        index = ((a >> bit) & 1) * 4 + ((b >> bit) & 1) * 2 + ((c >> bit) & 1)
        expected |= ((np.uint64(table) >> index) & 1) << np.uint64(bit)
    assert np.array_equal(got, expected.astype(np.uint32))


def test_prmt_default_mode_picks_bytes_and_replicates_signs():
    words = _words(5)
    got = _run_words("prmt(a=%a, b=%b, selector=%c)", words)
    source = [(words[:, (k // 4)].astype(np.uint64) >> (8 * (k % 4))) & 0xFF for k in range(8)]
    expected = np.zeros(64, dtype=np.uint64)
    for byte in range(4):
        nibble = (words[:, 2].astype(np.uint64) >> (4 * byte)) & 0xF
        picked = np.choose((nibble & 7).astype(np.int64), source)
        sign = np.where(picked & 0x80, 0xFF, 0x00)
        expected |= np.where(nibble & 8, sign, picked).astype(np.uint64) << np.uint64(8 * byte)
    assert np.array_equal(got, expected.astype(np.uint32))


# The PTX ISA's table of prmt's modes: for selector bits n = c[1:0], the source bytes of d.b3 d.b2 d.b1 d.b0.
MODE_TABLE = {
    "f4e": ["3210", "4321", "5432", "6543"],
    "b4e": ["5670", "6701", "7012", "0123"],
    "rc8": ["0000", "1111", "2222", "3333"],
    "ecl": ["3210", "3211", "3222", "3333"],
    "ecr": ["0000", "1110", "2210", "3210"],
    "rc16": ["1010", "3232", "1010", "3232"],
}


@pytest.mark.parametrize("mode", sorted(MODE_TABLE))
def test_prmt_modes_follow_the_isa_table(mode):
    words = _words(len(mode) * 7 + ord(mode[0]))
    got = _run_words(f'prmt(a=%a, b=%b, selector=%c, mode="{mode}")', words)
    pair = words[:, 0].astype(np.uint64) | (words[:, 1].astype(np.uint64) << 32)
    for thread in range(64):
        sources = MODE_TABLE[mode][int(words[thread, 2]) & 3][::-1]  # d.b0 first
        expected = sum(((int(pair[thread]) >> (8 * int(s))) & 0xFF) << (8 * k) for k, s in enumerate(sources))
        assert int(got[thread]) == expected, thread


@pytest.mark.parametrize(
    ("target", "rounding"),
    [("float16", "nearest"), ("float16", "zero"), ("bfloat16", "nearest"), ("bfloat16", "zero"),
     ("float8_e4m3", "nearest"), ("float8_e5m2", "nearest")],
)  # fmt: skip
def test_cvt_pack_rounds_two_floats_into_one_register(target, rounding):
    rng = np.random.default_rng(len(target) + len(rounding))
    values = (rng.standard_normal((64, 2)) * np.array([1.0, 3e4])).astype(np.float32)
    values[:4, 1] = [np.inf, -np.inf, 1e6, np.nan]
    text = f"""kernel k(%x: ptr<float32>, %out: ptr<uint16>) num_threads=64 {{
  %t: int32 = let(value=thread_index())
  %low: float32 = load(pointer=pointer_add(%x, %t * 8), width=4)
  %high: float32 = load(pointer=pointer_add(%x, (%t * 8) + 4), width=4)
  %h: vector<{target}, 2> = cvt_pack(high=%high, low=%low, dtype={target}, rounding="{rounding}")
  store(pointer=pointer_add(%out, %t * {2 * (2 if target.endswith("16") else 1)}), value=%h)
}}"""
    torch_type = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(target)
    width = 2 if torch_type is not None else 1
    out = torch.zeros(64 * 2 * width, dtype=torch.uint8)
    text = text.replace("ptr<uint16>", f"ptr<{target}>")
    run(text, [torch.from_numpy(values), out])
    source = torch.from_numpy(values)
    if torch_type is None:
        fp8 = {"float8_e4m3": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}[target]
        limit = torch.finfo(fp8).max
        expected = source.clamp(-limit, limit).to(fp8)  # .satfinite: clamp, then round to nearest
    elif rounding == "nearest":
        expected = source.to(torch_type)
    else:
        nearest = source.to(torch_type)
        # round toward zero: step back toward zero where nearest rounding went away from it
        away = nearest.to(torch.float64).abs() > source.to(torch.float64).abs()
        # one step toward zero is one code down, in sign-magnitude formats (inf steps to the largest finite)
        stepped = (nearest.view(torch.int16) - 1).view(torch_type)
        expected = torch.where(away & torch.isfinite(source), stepped, nearest)
        expected = torch.where(torch.isinf(source), nearest, expected)
    expected_bytes = expected.contiguous().view(torch.uint8).reshape(-1)
    nan = torch.isnan(source).reshape(-1)
    got = out.view(torch.uint8)
    for element in range(128):
        chunk = slice(element * width, element * width + width)
        if nan[element]:
            assert torch.isnan(got[chunk].view(expected.dtype)).all()
        else:
            assert torch.equal(got[chunk], expected_bytes[chunk]), (element, values.reshape(-1)[element])
