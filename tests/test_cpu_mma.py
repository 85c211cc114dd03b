"""mma.sync in the SIMT interpreter, checked against A @ B + C computed by numpy, with each lane's fragment
registers built from the PTX ISA's per-shape fragment formulas transcribed below (and, where tilevm.layout
has the fragment, checked against it too). Float data are small integers, so every sum is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.cpu_programs import run
from tilevm.dtypes import dtype as parse_dtype
from tilevm.dtypes import encode
from tilevm.ir.thread.compute import mma_fragment_types
from tilevm.ir.types import ScalarType, VectorType
from tilevm.layout.mma import mma_fragments

LANES = np.arange(32)
GROUP, THREAD = LANES >> 2, LANES % 4

# The PTX ISA's "Matrix Fragments for mma.m16n8k*" formulas: (row, column) of element i of lane's A or B.
A_FORMULAS = {
    ("m16n8k8", 16): lambda i: (GROUP + 8 * (i >= 2), THREAD * 2 + (i & 1)),
    ("m16n8k16", 16): lambda i: (GROUP + 8 * (i in (2, 3, 6, 7)), THREAD * 2 + (i & 1) + 8 * (i >= 4)),
    ("m16n8k16", 8): lambda i: (GROUP + 8 * (i >= 4), THREAD * 4 + (i & 3)),
    ("m16n8k32", 8): lambda i: (
        GROUP + 8 * (i in (4, 5, 6, 7, 12, 13, 14, 15)),
        THREAD * 4 + (i & 3) + 16 * (i >= 8),
    ),
    ("m16n8k32", 4): lambda i: (GROUP + 8 * (i >= 8), THREAD * 8 + (i & 7)),
    ("m16n8k64", 4): lambda i: (GROUP + 8 * (8 <= i < 16 or i >= 24), THREAD * 8 + (i & 7) + 32 * (i >= 16)),
}
B_FORMULAS = {
    ("m16n8k8", 16): lambda i: (THREAD * 2 + i, GROUP),
    ("m16n8k16", 16): lambda i: (THREAD * 2 + (i & 1) + 8 * (i >= 2), GROUP),
    ("m16n8k16", 8): lambda i: (THREAD * 4 + i, GROUP),
    ("m16n8k32", 8): lambda i: (THREAD * 4 + (i & 3) + 16 * (i >= 4), GROUP),
    ("m16n8k32", 4): lambda i: (THREAD * 8 + i, GROUP),
    ("m16n8k64", 4): lambda i: (THREAD * 8 + (i & 7) + 32 * (i >= 8), GROUP),
}


def C_FORMULA(i):
    return GROUP + 8 * (i >= 2), THREAD * 2 + (i & 1)


CASES = [
    ("m16n8k8", "float16", "float16", "float32"),
    ("m16n8k8", "bfloat16", "bfloat16", "float32"),
    ("m16n8k16", "float16", "float16", "float32"),
    ("m16n8k16", "float16", "float16", "vector<float16, 2>"),
    ("m16n8k16", "bfloat16", "bfloat16", "float32"),
    ("m16n8k16", "int8", "int8", "int32"),
    ("m16n8k16", "uint8", "int8", "int32"),
    ("m16n8k32", "int8", "uint8", "int32"),
    ("m16n8k32", "float8_e4m3", "float8_e5m2", "float32"),
    ("m16n8k32", "int4", "int4", "int32"),
    ("m16n8k64", "int4", "uint4", "int32"),
    ("m16n8k64", "uint4", "uint4", "int32"),
]


def _values(rng, name, shape):
    kind = parse_dtype(name)
    if kind.is_integer:
        return rng.integers(kind.min_value, kind.max_value + 1, size=shape).astype(np.float64)
    return rng.integers(-4, 5, size=shape).astype(np.float64)


def _words(matrix, kind, formula, count, warps):
    """Each lane's 32-bit registers [warps, 32, count]: element i of the fragment at formula(i)."""
    per_register = 32 // kind.nbits
    words = np.zeros((warps, 32, count), dtype=np.uint64)
    for i in range(per_register * count):
        rows, columns = formula(i)
        codes = encode(matrix[:, rows, columns], kind).astype(np.uint64)
        words[:, :, i // per_register] |= codes << np.uint64(kind.nbits * (i % per_register))
    return words


def _register_type(kind: str) -> tuple[str, str]:
    """The register type of one 32-bit fragment register and its bitcast parameters."""
    if kind.startswith("vector") or kind in ("float32", "int32"):
        element, count = (kind, 1) if not kind.startswith("vector") else ("float16", 2)
    else:
        element, count = kind, 32 // parse_dtype(kind).nbits
    return (
        kind if count == 1 or kind.startswith("vector") else f"vector<{kind}, {count}>"
    ), f"{element}, {count}"


def _program(shape, a_name, b_name, accumulator, counts):
    """Each thread loads its fragment registers (32-bit words, row t of each operand), runs the mma and
    stores its D registers."""
    lines = ["kernel k(%a: ptr<uint32>, %b: ptr<uint32>, %c: ptr<uint32>, %d: ptr<uint32>) num_threads=64 {"]
    lines.append("  %t: int32 = let(value=(block_index(0) * 64) + thread_index())")
    names = {}
    for operand, count, kind in zip("abc", counts, (a_name, b_name, accumulator)):
        register_type, parameters = _register_type(kind)
        names[operand] = []
        for r in range(count):
            address = f"pointer_add(%{operand}, ((%t * {count}) + {r}) * 4)"
            lines.append(f"  %{operand}{r}w: uint32 = load(pointer={address}, width=4)")
            lines.append(
                f"  %{operand}{r}: {register_type} = let(value=bitcast<{parameters}>(%{operand}{r}w))"
            )
            names[operand].append(f"%{operand}{r}")
    c_type = _register_type(accumulator)[0]
    outputs = ", ".join(f"%d{r}: {c_type}" for r in range(counts[2]))
    a_list, b_list, c_list = (", ".join(names[operand]) for operand in "abc")
    lines.append(f'  {outputs} = mma(shape="{shape}", a=[{a_list}], b=[{b_list}], c=[{c_list}])')
    for r in range(counts[2]):
        address = f"pointer_add(%d, ((%t * {counts[2]}) + {r}) * 4)"
        lines.append(f"  store(pointer={address}, value=bitcast<uint32, 1>(%d{r}))")
    lines.append("}")
    return "\n".join(lines)


@pytest.mark.parametrize(("shape", "a_name", "b_name", "accumulator"), CASES)
def test_mma_computes_a_times_b_plus_c_on_the_isa_fragments(shape, a_name, b_name, accumulator):
    rng = np.random.default_rng(abs(hash((shape, a_name, b_name, accumulator))) % 2**32)
    a_kind, b_kind = parse_dtype(a_name), parse_dtype(b_name)
    depth = int(shape.split("k")[1])
    warps = 4  # two blocks of two warps, each warp with its own matrices
    a = _values(rng, a_name, (warps, 16, depth))
    b = _values(rng, b_name, (warps, depth, 8))
    accumulate_half = accumulator.startswith("vector")
    c = rng.integers(-8, 9, size=(warps, 16, 8)).astype(np.float64)
    c_type = (
        VectorType(parse_dtype("float16"), 2) if accumulate_half else ScalarType(parse_dtype(accumulator))
    )
    counts = [len(types) for types in mma_fragment_types(shape, a_kind, c_type)]
    bits = a_kind.nbits
    a_words = _words(a, a_kind, A_FORMULAS[(shape, bits)], counts[0], warps)
    b_words = _words(b, b_kind, B_FORMULAS[(shape, b_kind.nbits)], counts[1], warps)
    c_kind = parse_dtype("float16") if accumulate_half else parse_dtype(accumulator)
    c_words = _words(c, c_kind, C_FORMULA, counts[2], warps)
    tensors = [
        torch.from_numpy(words.astype(np.int64)).to(torch.int32).view(-1)
        for words in (a_words, b_words, c_words)
    ]
    output = torch.full((warps * 32 * counts[2],), -1, dtype=torch.int32)
    run(_program(shape, a_name, b_name, accumulator, counts), [*tensors, output], grid=(2,))
    d = output.view(torch.int32).numpy().view(np.uint32).reshape(warps, 32, counts[2])
    expected = a @ b + c  # exact: float64 of small integers, or int64
    if c_kind.is_integer:
        expected_words = _words(expected, c_kind, C_FORMULA, counts[2], warps)
    else:
        expected_words = _words(
            expected.astype(np.float32).astype(np.float64), c_kind, C_FORMULA, counts[2], warps
        )
    assert np.array_equal(d, expected_words.astype(np.uint32))


@pytest.mark.parametrize(
    ("shape", "operand"), [("m16n8k16", "float16"), ("m16n8k32", "int8"), ("m16n8k64", "int4")]
)
def test_the_transcribed_fragments_agree_with_tilevm_layout(shape, operand):
    kind = parse_dtype(operand)
    fragments = mma_fragments(shape, kind)
    for name, layout, formula in (("a", fragments.a, A_FORMULAS), ("b", fragments.b, B_FORMULAS)):
        table = layout.table()  # [lane, slot, (row, column)]
        for slot in range(table.shape[1]):
            rows, columns = formula[(shape, kind.nbits)](slot)
            assert np.array_equal(table[:, slot, 0], np.broadcast_to(rows, 32)), (name, slot)
            assert np.array_equal(table[:, slot, 1], np.broadcast_to(columns, 32)), (name, slot)
    for slot in range(4):
        rows, columns = C_FORMULA(slot)
        assert np.array_equal(fragments.c.table()[:, slot], np.stack([rows, columns], axis=1))


def test_m16n8k16_lane_5_holds_the_elements_the_isa_figure_shows():
    # Figure "MMA .m16n8k16 fragment layout for matrix A with .f16": lane 5 (group 1, thread 1) holds
    # a0, a1 = A[1, 2:4], a2, a3 = A[9, 2:4], a4, a5 = A[1, 10:12], a6, a7 = A[9, 10:12].
    formula = A_FORMULAS[("m16n8k16", 16)]
    held = [(int(formula(i)[0][5]), int(formula(i)[1][5])) for i in range(8)]
    assert held == [(1, 2), (1, 3), (9, 2), (9, 3), (1, 10), (1, 11), (9, 10), (9, 11)]
