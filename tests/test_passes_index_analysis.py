"""Index analysis: every divisibility rule checked by brute force (random integer expressions evaluated by the
reference executor on values that satisfy the assumptions), tight on simple cases; shared placements checked
against the layout's offset table; and the annotated IR of small programs and of the example kernels."""

from __future__ import annotations

import pathlib
import random
import runpy

import numpy as np
import pytest
import torch

from tilevm import dtypes
from tilevm.ir import (
    EXPRESSION_CLASSES,
    INSTRUCTION_CLASSES,
    AllocShared,
    BinaryExpr,
    CastExpr,
    Const,
    LoadShared,
    ProgramBuilder,
    SliceShared,
    UnaryExpr,
    Var,
    async_copies,
    global_access,
    parse,
    shared_tiles,
)
from tilevm.ir.semantics import IntegerDivisionByZero, to_carrier
from tilevm.ir.types import ScalarType
from tilevm.layout import SharedLayout
from tilevm.passes.filecheck import filecheck
from tilevm.passes.index_analysis import _HANDLERS, analyze_indices, annotate_indices
from tilevm.passes.index_divisibility import _RULES, expression_divisibility, power_of_two_part
from tilevm.runtime.reference.scalars import evaluate
from tilevm.runtime.reference.state import BlockState

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def test_every_expression_class_has_a_rule_and_every_memory_instruction_a_handler():
    assert set(_RULES) == set(EXPRESSION_CLASSES)
    assert set(_HANDLERS) <= set(INSTRUCTION_CLASSES)
    # the memory instructions that neither define a view nor move tile data (a new one must be classified)
    unaddressed = {"FreeShared", "AllocRegister", "CopyAsyncCommit", "CopyAsyncWait", "Sync"}
    handled = {cls.__name__ for cls in _HANDLERS}
    memory = {name for module in (global_access, shared_tiles, async_copies) for name in module.__all__}
    assert memory - unaddressed == handled & memory


# -- scalar rules by brute force

TYPES = (dtypes.int32, dtypes.int8, dtypes.uint8, dtypes.int64)
OPS = ("add", "sub", "mul", "floordiv", "mod", "max", "min", "and", "or", "xor", "shl", "shr")


def random_expression(rng: random.Random, variables: list[Var], dtype, depth: int):
    """A random integer expression of ``dtype``: variables, constants, unary, binary ops and casts."""
    if depth == 0 or rng.random() < 0.2:
        candidates = [v for v in variables if v.type.dtype == dtype]
        if candidates and rng.random() < 0.7:
            return rng.choice(candidates)
        return Const(rng.choice([0, 1, 2, 3, 4, 6, 8, 16, 24, 32, 48, 64, -16, -8, 5]), dtype)
    choice = rng.random()
    if choice < 0.15:
        return UnaryExpr(
            rng.choice(["neg", "abs", "not", "floor"]), random_expression(rng, variables, dtype, depth - 1)
        )
    if choice < 0.25:
        return CastExpr(random_expression(rng, variables, rng.choice(TYPES), depth - 1), dtype)
    op = rng.choice(OPS)
    lhs = random_expression(rng, variables, dtype, depth - 1)
    if op in ("shl", "shr", "floordiv") and rng.random() < 0.8:
        rhs = Const(rng.choice([0, 1, 2, 3, 4, 7, dtype.nbits - 1, dtype.nbits, -1]), dtype)
    else:
        rhs = random_expression(rng, variables, dtype, depth - 1)
    return BinaryExpr(op, lhs, rhs)


def sample(rng: random.Random, variable: Var, divisibility: int) -> int:
    """A value of ``variable``'s dtype that is a multiple of ``divisibility``: small, or near the edges."""
    dtype = variable.type.dtype
    low, high = int(dtype.min_value), int(dtype.max_value)
    value = rng.choice([rng.randint(-40, 40), rng.randint(low, high), high, low])
    value -= value % divisibility
    return value if low <= value <= high else value + divisibility


def states_of(assignments: list[dict[Var, int]]) -> list[BlockState]:
    """One executor state per assignment, its variables bound."""
    states = []
    for assignment in assignments:
        state = BlockState(block_index=(0, 0, 0), grid=(1, 1, 1), rng=np.random.default_rng(0), run=None)
        for variable, value in assignment.items():
            state.bind(variable, to_carrier(value, variable.type.dtype))
        states.append(state)
    return states


def values_of(expression, states: list[BlockState]) -> list[int]:
    """The executor's value of ``expression`` in each state (those dividing by zero left out)."""
    results = []
    for state in states:
        try:
            results.append(int(evaluate(expression, state)))
        except IntegerDivisionByZero:
            continue
    return results


@pytest.mark.parametrize("seed", range(6))
def test_claimed_divisibility_holds_on_every_value(seed):
    rng = random.Random(seed)
    variables = [Var(f"v{i}", ScalarType(rng.choice(TYPES))) for i in range(4)]
    divisibility = {v: 1 << rng.randint(0, min(6, v.type.dtype.nbits - 1)) for v in variables}
    states = states_of([{v: sample(rng, v, d) for v, d in divisibility.items()} for _ in range(40)])
    checked, strong = 0, 0
    for _ in range(100):
        dtype = rng.choice(TYPES)
        expression = random_expression(rng, variables, dtype, depth=4)
        claimed = expression_divisibility(expression, divisibility)
        strong += claimed >= 8
        for value in values_of(expression, states):
            assert value % claimed == 0, (str(expression), claimed, value)
            checked += 1
    assert checked > 2500 and strong > 10  # the claims are not all trivial


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("(%n * 16) + 32", 16),
        ("(%m * 64) // 4", 256),
        ("(%m * 64) // 128", 8),
        ("(%m * 4) // 128", 1),  # not exact: nothing known
        ("%n << 3", 8),
        ("%m << 3", 128),
        ("(%n * 16) & -32", 32),
        ("(%n * 8) % 16", 8),
        ("%m % %n", 1),
        ("(%m * 4) % (%m * 2)", 32),
        ("(%m * 64) >> 2", 256),
        ("%m - (%n * 4)", 4),
        ("max(%m, %n * 8)", 8),
        ("cast<int8>(%m * 4)", 64),
        ("cast<int8>(%m * 256)", 256),  # always 0 as an int8: divisible by 2^8, the cap of its width
        ("neg(%m * 2)", 32),
        ("not(%m * 2)", 1),
    ],
)
def test_simple_expressions_get_the_tightest_divisibility(value, expected):
    """%m is a multiple of 16, %n anything; the expected value is the largest power of two dividing every
    value of the expression: written from arithmetic, and checked to be attained by some value."""
    program = parse(
        f"kernel k(%m: int32 divisibility=16, %n: int32) num_threads=32 {{\n"
        f"  %x: {'int8' if 'int8' in value else 'int32'} = let(value={value})\n}}"
    )
    analysis = analyze_indices(program)
    assert analysis.divisibility[program.body[0].output] == expected
    m, n = (param.variable for param in program.params)
    rng = random.Random(1)
    assignments = [{m: sample(rng, m, 16), n: sample(rng, n, 1)} for _ in range(200)]
    observed = min(
        power_of_two_part(v, cap=1 << 8 if "int8" in value else 1 << 16)
        for v in values_of(program.body[0].value, states_of(assignments))
    )
    assert observed == expected


def test_loop_variables_and_declared_values():
    program = parse(
        """kernel k(%n: int32 divisibility=16) num_threads=32 {
  %a: int32 = declare(init=%n * 4)
  for %i: int32 in range(%n, 1000, 48) {
    %b: int32 = let(value=%i * 2)
  }
  for %j: int32 in range(%a, 1000, 64) {
  }
}"""
    )
    analysis = analyze_indices(program)
    declared, first_loop, second_loop = program.body
    assert analysis.divisibility[declared.output] == 1  # it may change: nothing is known
    assert analysis.divisibility[first_loop.variable] == 16  # start 16k, step 48: gcd's power of two
    assert analysis.divisibility[first_loop.body[0].output] == 32
    assert analysis.divisibility[second_loop.variable] == 1


# -- shared placements against the layout's offset table

# each layout with the contiguity expected along the window's last dim, written from the layout: a row
# without a swizzle; runs of 2^base elements under one, but no more than the column's multiple of 8
SHARED_LAYOUTS = [
    (SharedLayout.row_major(4, 32, 64), 32),
    (SharedLayout.column_major(4, 32, 64), 1),
    (SharedLayout.row_major(4, 32, 64).swizzle(3, 3, 3), 8),
    (SharedLayout.row_major(4, 32, 64).swizzle(2, 2, 4), 4),
    (SharedLayout.row_major(4, 32, 64).swizzle(1, 4, 5), 8),
]


@pytest.mark.parametrize(("layout", "contiguity"), SHARED_LAYOUTS, ids=str)
@pytest.mark.parametrize("dtype", [dtypes.float16, dtypes.int4, dtypes.float32])
def test_shared_access_facts_hold_at_every_element(layout, contiguity, dtype):
    """A [4, 32, 64] allocation, the stage at a runtime index, then a [16, 32] window at a constant row and a
    runtime column that is a multiple of 8: every claim checked on the offsets the layout's table gives."""
    builder = ProgramBuilder("k", num_threads=32)
    stage = builder.scalar_param("stage", dtypes.int32)
    column = builder.scalar_param("column", dtypes.int32, divisibility=8)
    tile = builder.emit_output(AllocShared, "tile", layout, dtype=dtype, shape=(4, 32, 64))
    buffer = emit_slice(builder, "buffer", tile, (stage, Const(0), Const(0)), (32, 64), (1, 2))
    window = emit_slice(builder, "window", buffer, (Const(8), column), (16, 32), (0, 1))
    builder.emit_output(LoadShared, "values", tensor=window)
    program = builder.build()
    (access,) = analyze_indices(program).accesses[program.body[-1]]
    assert access.dims[1].contiguity == contiguity
    table = layout.table()
    for stage_value, column_value in [(0, 0), (1, 8), (3, 16), (2, 24), (1, 32)]:
        bits = table[stage_value, 8:24, column_value : column_value + 32].astype(np.int64) * dtype.nbits
        assert bits[0, 0] % access.start_bits == 0
        for dim, info in enumerate(access.dims):
            assert np.all(np.diff(bits, axis=dim) % info.step_bits == 0)
            runs = np.moveaxis(bits, dim, -1).reshape(-1, info.extent // info.contiguity, info.contiguity)
            assert np.all(np.diff(runs, axis=-1) == dtype.nbits)


def emit_slice(builder, name, tensor, offsets, shape, dims):
    """A slice whose type carries the layout derived from its tensor's, as a layout pass sets it."""
    fields = {"tensor": tensor, "offsets": tuple(offsets), "shape": tuple(shape), "dims": tuple(dims)}
    layout = SliceShared(output=tensor, **fields).slice_layout(tensor.type.layout)
    return builder.emit_output(SliceShared, name, layout, **fields)


# -- annotated programs


def w4a16_program(packed: torch.Tensor):
    namespace = runpy.run_path(str(EXAMPLES / "w4a16_matmul.py"), run_name="example")
    x = torch.zeros(5, 256, dtype=torch.float16)
    scales = torch.zeros(4, 96, dtype=torch.float16)
    out = torch.zeros(5, 96, dtype=torch.float16)
    return namespace["w4a16_matmul"].ir(x, packed, scales, out, BM=16, BN=32, GROUP=64)


def test_w4a16_weights_load_16_bytes_per_thread():
    """The launch specialized on 16-byte aligned bytes with a row stride of 48: every row of the [64, 16]
    window of bytes starts 16-byte aligned (k0 = 64 * group rows down, n0 // 2 = 16 * block bytes along)."""
    program = w4a16_program(torch.zeros(256, 48, dtype=torch.uint8))
    filecheck(
        annotate_indices(program),
        """
        CHECK: divisibility 32
        CHECK-NEXT: %n0: int32 = let(value=block_index(1) * 32)
        CHECK: divisibility 64
        CHECK-NEXT: %k0: int32 = let(value=%group * 64)
        CHECK: # tensor: global, start aligned to 16 bytes, contiguity [1, 16], constancy [1, 1],
        CHECK-SAME: steps [16 bytes, 1 byte], remaining [16, 16], vector 16 bytes
        CHECK-NEXT: %weight_bytes: register<uint8, [64, 16]{{.*}}> = load_global(
        CHECK-SAME: tensor=%W, offsets=[%k0, %n0 // 2]
        """,
    )


def test_w4a16_weights_with_an_odd_row_stride_load_one_byte_at_a_time():
    """The same kernel on bytes whose rows are 49 apart (a slice of a wider tensor) and start one byte into
    the storage: nothing above a byte is known of a row's start."""
    packed = torch.zeros(256 * 49 + 1, dtype=torch.uint8)[1:].view(256, 49)[:, :48]
    program = w4a16_program(packed)
    filecheck(
        annotate_indices(program),
        """
        CHECK: # tensor: global, start aligned to 1 byte, contiguity [1, 16], constancy [1, 1],
        CHECK-SAME: steps [1 byte, 1 byte], remaining [16, 16], vector 1 byte
        CHECK-NEXT: %weight_bytes: register<uint8, [64, 16]{{.*}}> = load_global(
        """,
    )


def test_matmul_copies_16_bytes_per_thread_into_shared_memory():
    """Rows of A 16 elements apart at least (the specialization), so 32 bytes; in shared memory the planned
    swizzle keeps runs of 8 elements (16 bytes) together, so the stage is contiguous in 16-byte pieces."""
    namespace = runpy.run_path(str(EXAMPLES / "matmul_fp16.py"), run_name="example")
    a, b, c = (torch.zeros(64, 64, dtype=torch.float16) for _ in range(3))
    program = namespace["matmul"].ir(a, b, c, BM=32, BN=32, BK=32, STAGES=2)
    filecheck(
        annotate_indices(program),
        """
        CHECK: # source: global, start aligned to 16 bytes, contiguity [1, 32], constancy [1, 1],
        CHECK-SAME: steps [32 bytes, 2 bytes], remaining [16, 16], vector 16 bytes;
        CHECK-SAME: destination: shared, start aligned to {{[0-9]+}} bytes,
        CHECK-SAME: contiguity [1, 8], constancy [1, 1],
        CHECK-SAME: steps [16 bytes, 2 bytes], remaining [any, any], vector 16 bytes
        CHECK-NEXT: copy_async(destination=%A, source=%ASOURCE
        CHECK: # tensor: shared, start aligned to {{[0-9]+}} bytes, contiguity [1, 8]
        CHECK-NEXT: load_shared(
        """,
    )


def test_sub_byte_elements_may_start_inside_a_byte():
    program = parse(
        """kernel k(%p: ptr<int4> divisibility=16, %r: int32, %s: int32 divisibility=32) num_threads=32 {
  %w: global<int4, [%r, 64], strides=[%s, 1]> = global_view(pointer=%p, shape=[%r, 64], strides=[%s, 1])
  %odd: int32 = let(value=(block_index(0) * 2) + 1)
  %y: int32 = let(value=block_index(1))
  %a: register<int4, [8, 32]> = load_global(tensor=%w, offsets=[%y, %odd * 32], shape=[8, 32], dims=[0, 1])
  %b: register<int4, [8, 8]> = load_global(tensor=%w, offsets=[0, %odd], shape=[8, 8], dims=[0, 1])
}"""
    )
    filecheck(
        annotate_indices(program),
        """
        CHECK: # tensor: global, start aligned to 16 bytes, contiguity [1, 32], constancy [1, 1],
        CHECK-SAME: steps [16 bytes, 4 bits], remaining [1, 32], vector 16 bytes
        CHECK-NEXT: %a: register<int4, [8, 32]>
        CHECK: # tensor: global, start aligned to 4 bits, contiguity [1, 8], constancy [1, 1],
        CHECK-SAME: steps [16 bytes, 4 bits], remaining [1, 1], vector 4 bits
        CHECK-NEXT: %b: register<int4, [8, 8]>
        """,
    )


GLOBAL_DTYPES = [dtypes.int4, dtypes.uint8, dtypes.float16, dtypes.float32, dtypes.float6_e3m2, dtypes.int2]


@pytest.mark.parametrize("seed", range(16))
def test_global_access_facts_hold_at_every_element(seed):
    """A rank-3 window at offsets and strides of random known divisibility (the last stride the constant 1 or
    a parameter): each claim checked on the bit addresses of its elements, for values that satisfy them."""
    rng = random.Random(seed)
    dtype = GLOBAL_DTYPES[seed % len(GLOBAL_DTYPES)]
    power = [1 << rng.randint(0, 5) for _ in range(8)]  # pointer, sizes 0-2, strides 0-1, offsets
    last_stride = "1" if rng.random() < 0.6 else "%s2"
    program = parse(
        f"""kernel k(%p: ptr<{dtype}> divisibility={power[0]}, %n0: int32 divisibility={power[1]},
  %n1: int32 divisibility={power[2]}, %n2: int32 divisibility={power[3]}, %s0: int32 divisibility={power[4]},
  %s1: int32 divisibility={power[5]}, %s2: int32, %o: int32 divisibility={power[6]},
  %q: int32 divisibility={power[7]}) num_threads=32 {{
  %g: global<{dtype}, [%n0, %n1, %n2], strides=[%s0, %s1, {last_stride}]> = global_view(pointer=%p,
    shape=[%n0, %n1, %n2], strides=[%s0, %s1, {last_stride}])
  %t: register<{dtype}, [4, 8]> = load_global(tensor=%g, offsets=[%o, 3, %q], shape=[4, 8], dims=[0, 2])
}}"""
    )
    (access,) = analyze_indices(program).accesses[program.body[-1]]
    assert access.dims[1].contiguity == (8 if last_stride == "1" else 1)
    for _ in range(50):
        p, n0, _, n2, s0, s1, o, q = (power_i * rng.randint(-3, 40) for power_i in power)
        s2 = 1 if last_stride == "1" else rng.randint(-5, 50)
        rows = np.arange(4)[:, None] + o
        columns = np.arange(8)[None, :] + q
        bits = p * 8 + dtype.nbits * (rows * s0 + 3 * s1 + columns * s2)
        assert bits[0, 0] % access.start_bits == 0
        assert np.all(np.diff(bits, axis=0) % access.dims[0].step_bits == 0)
        assert np.all(np.diff(bits, axis=1) % access.dims[1].step_bits == 0)
        if last_stride == "1":
            assert np.all(np.diff(bits, axis=1) == dtype.nbits)
        assert (n0 - o) % access.dims[0].remaining == 0 and (n2 - q) % access.dims[1].remaining == 0
