"""mma.sync fragments against the PTX ISA's fragment formulas ("Matrix Fragments for mma.m16n8k*").

The reference formulas below are transcribed from the ISA text, one per (shape, operand, matrix), with
``groupID = laneid >> 2`` and ``threadID_in_group = laneid % 4``; ``i`` is the element index a0, a1, ...
"""

import numpy as np
import pytest

from tilevm.layout import LayoutError, mma_fragments, parse


def c_fragment(g, t, i):
    # Accumulators of every m16n8k* shape here: row = groupID for c0, c1, groupID + 8 for c2, c3;
    # col = threadID_in_group * 2 + (i & 0x1).
    return (g if i < 2 else g + 8, t * 2 + (i & 0x1))


ISA = {
    ("m16n8k16", "f16"): {
        "a": (
            8,
            lambda g, t, i: (g if i in (0, 1, 4, 5) else g + 8, t * 2 + (i & 0x1) + (8 if i >= 4 else 0)),
        ),
        "b": (4, lambda g, t, i: (t * 2 + (i & 0x1) + (8 if i >= 2 else 0), g)),
        "c": (4, c_fragment),
    },
    ("m16n8k32", "int8"): {
        "a": (
            16,
            lambda g, t, i: (
                g if (0 <= i < 4 or 8 <= i < 12) else g + 8,
                t * 4 + (i & 0x3) + (16 if i >= 8 else 0),
            ),
        ),
        "b": (8, lambda g, t, i: (t * 4 + (i & 0x3) + (16 if i >= 4 else 0), g)),
        "c": (4, c_fragment),
    },
    ("m16n8k8", "tf32"): {
        "a": (4, lambda g, t, i: (g if i in (0, 2) else g + 8, t if i in (0, 1) else t + 4)),
        "b": (2, lambda g, t, i: (t if i == 0 else t + 4, g)),
        "c": (4, c_fragment),
    },
    ("m16n8k64", "int4"): {
        "a": (
            32,
            lambda g, t, i: (
                g if (0 <= i < 8 or 16 <= i < 24) else g + 8,
                t * 8 + (i & 0x7) + (32 if i >= 16 else 0),
            ),
        ),
        "b": (16, lambda g, t, i: (t * 8 + (i & 0x7) + (32 if i >= 8 else 0), g)),
        "c": (4, c_fragment),
    },
}
# Operand types that share a fragment layout with the one the formulas above are written for.
SAME_AS = {"bf16": "f16", "uint8": "int8", "e4m3": "int8", "e5m2": "int8", "uint4": "int4"}
SHAPES = {"m16n8k16": ("f16", "bf16"), "m16n8k32": ("int8", "uint8", "e4m3", "e5m2"), "m16n8k8": ("tf32",)}
SHAPES["m16n8k64"] = ("int4", "uint4")


def isa_table(formula, num_elements):
    return np.array(
        [[formula(lane >> 2, lane % 4, i) for i in range(num_elements)] for lane in range(32)], dtype=np.int64
    )


CASES = [(shape, operand, matrix) for shape, ops in SHAPES.items() for operand in ops for matrix in "abc"]


@pytest.mark.parametrize(("shape", "operand", "matrix"), CASES)
def test_fragment_matches_isa_formula(shape, operand, matrix):
    layout = getattr(mma_fragments(shape, operand), matrix)
    num_elements, formula = ISA[(shape, SAME_AS.get(operand, operand))][matrix]
    np.testing.assert_array_equal(layout.table(), isa_table(formula, num_elements))


@pytest.mark.parametrize(("shape", "operand", "matrix"), CASES)
def test_fragment_covers_its_matrix_once_and_round_trips(shape, operand, matrix):
    layout = getattr(mma_fragments(shape, operand), matrix)
    m, n, k = (int(part) for part in shape[1:].replace("n", " ").replace("k", " ").split())
    expected_shape = {"a": (m, k), "b": (k, n), "c": (m, n)}[matrix]
    assert layout.shape == expected_shape
    table = layout.table()
    assert table.shape[0] == 32
    flat = table[..., 0] * expected_shape[1] + table[..., 1]
    assert sorted(flat.ravel().tolist()) == list(range(expected_shape[0] * expected_shape[1]))
    assert parse(str(layout)) == layout


def test_operand_registers_are_32_bits():
    # The ISA's fragment tables: A of m16n8k16 f16 is four .f16x2 registers, of m16n8k64 int4 four .b32
    # registers of eight elements; B of m16n8k8 tf32 is two .b32 registers.
    bits = {"f16": 16, "int8": 8, "tf32": 32, "int4": 4}
    registers = {("m16n8k16", "a"): 4, ("m16n8k16", "b"): 2, ("m16n8k32", "a"): 4, ("m16n8k32", "b"): 2}
    registers |= {("m16n8k8", "a"): 4, ("m16n8k8", "b"): 2, ("m16n8k64", "a"): 4, ("m16n8k64", "b"): 2}
    for (shape, matrix), count in registers.items():
        operand = SHAPES[shape][0]
        layout = getattr(mma_fragments(shape, operand), matrix)
        assert layout.table().shape[1] * bits[operand] == 32 * count


def test_errors():
    with pytest.raises(LayoutError, match="unknown mma shape 'm8n8k4'"):
        mma_fragments("m8n8k4", "f16")
    with pytest.raises(LayoutError, match="mma shape m16n8k16 takes no 'int8' operands"):
        mma_fragments("m16n8k16", "int8")


def test_tilevm_dtypes_name_the_operand_types():
    import tilevm as tv

    for dtype, ptx_name in [(tv.float16, "f16"), (tv.bfloat16, "bf16"), (tv.float8_e4m3, "e4m3"),
                            (tv.int8, "int8")]:  # fmt: skip
        shape = "m16n8k16" if ptx_name in ("f16", "bf16") else "m16n8k32"
        assert mma_fragments(shape, dtype) == mma_fragments(shape, ptx_name)
    assert mma_fragments("m16n8k64", tv.int4).a.local_size == 32
