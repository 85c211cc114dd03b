"""Lowered dots run by the SIMT interpreter, against the block-level reference executor (bit for bit) and
numpy (exactly): mma atoms of every operand dtype that has one and the multiply-add fallback, with atoms and
their spread over warps chosen at random. Float inputs are small integers, so that every partial sum is
exact in any order (``tilevm.passes.lower.dot`` says where orders differ); one float test of random values
compares with float64 within float32's summation bound. The examples' Thread IR uses m16n8k16."""

import dataclasses
import importlib
import importlib.util
import pathlib

import numpy as np
import pytest
import torch
from layout_assignment import random_layout
from lowering import assert_same_bytes, lowered_kernel, run_both

import tilevm as tv
from tilevm.ir import verify
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.stmt import For
from tilevm.ir.thread import THREAD_IR, Mma
from tilevm.layout import SCALAR_ATOM, MmaFragments, RegisterLayout, local, mma_fragments
from tilevm.layout.mma import DTYPE_NAMES, MMA_OPERANDS
from tilevm.passes.infer_layouts import LayoutChooser
from tilevm.passes.lower import lower_to_threads
from tilevm.runtime.binding import bind_arguments, flat_values
from tilevm.runtime.cpu import execute as execute_threads

# the module (``tilevm.passes`` exports the pass function of the same name)
INFERENCE = importlib.import_module("tilevm.passes.infer_layouts")
EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
TORCH = {
    tv.float16: torch.float16,
    tv.bfloat16: torch.bfloat16,
    tv.float32: torch.float32,
    tv.int8: torch.int8,
    tv.int16: torch.int16,
    tv.int32: torch.int32,
    tv.int64: torch.int64,
}


class ChosenDot(LayoutChooser):
    """Layout inference that builds a dot from a given atom (None: the scalar one) and quotient."""

    def __init__(self, num_threads: int, atom: MmaFragments | None, quotient: RegisterLayout) -> None:
        super().__init__(num_threads)
        self.atom, self.chosen_quotient = atom, quotient

    def dot_atom(self, fitting):
        return self.atom

    def quotient(self, shape, num_groups):
        return self.chosen_quotient


def random_dot_layouts(rng: np.random.Generator, operand, m: int, n: int, k: int, num_threads: int):
    """A random mma atom that tiles the shapes (else the scalar one) and a random quotient over the groups,
    and the layouts of a, b and the accumulator they make (``tilevm.layout.dot_atom``'s rule)."""
    name = DTYPE_NAMES.get(str(operand), str(operand))
    atoms = [mma_fragments(shape, name) for shape, types in MMA_OPERANDS.items() if name in types]
    fitting = [atom for atom in atoms if m % 16 == 0 and n % 8 == 0 and k % atom.a.shape[1] == 0]
    # the scalar atom only where no mma fits: over large tiles, a thread's many multiply-adds make long
    # programs that the tests would spend their time printing and parsing
    atom = fitting[int(rng.integers(len(fitting)))] if fitting else None
    fragments = SCALAR_ATOM if atom is None else atom
    atom_m, atom_n, atom_k = (*fragments.c.shape, fragments.a.shape[1])
    quotient = random_layout((m // atom_m, n // atom_n), num_threads // fragments.c.num_threads, rng)
    layouts = (
        quotient.reduce(1) * local(1, k // atom_k) * fragments.a,
        local(k // atom_k, 1) * quotient.reduce(0) * fragments.b,
        quotient * fragments.c,
    )
    return atom, quotient, layouts


def dot_kernel(num_warps: int):
    @tv.kernel(num_warps=num_warps)
    def dot(a: tv.Tensor, b: tv.Tensor, c: tv.Tensor, out: tv.Tensor, LAYOUTS: tv.constexpr):
        layout_a, layout_b, layout_c = LAYOUTS
        (m, k), n = layout_a.shape, layout_b.shape[1]
        a_tile = tv.load_global(a, offsets=[0, 0], shape=[m, k], layout=layout_a)
        b_tile = tv.load_global(b, offsets=[0, 0], shape=[k, n], layout=layout_b)
        c_tile = tv.load_global(c, offsets=[0, 0], shape=[m, n], layout=layout_c)
        tv.store_global(out, tv.dot(a_tile, b_tile, c_tile), offsets=[0, 0])

    return dot


def packed(values: np.ndarray, dtype) -> tv.TensorArgument:
    """``values`` encoded in ``dtype`` and packed densely (any width), as a kernel argument of their shape."""
    return tv.view(torch.from_numpy(tv.pack(tv.encode(values, dtype), dtype)), dtype, shape=values.shape)


def poisoned(shape: tuple[int, ...], dtype) -> torch.Tensor:
    """A tensor of ``dtype`` whose bytes are all 0xAB, so that an element left unwritten shows."""
    return torch.full((*shape, dtype.nbits // 8), 0xAB, dtype=torch.uint8).view(TORCH[dtype]).reshape(shape)


def small_values(rng: np.random.Generator, dtype, shape, bound: int) -> np.ndarray:
    low, high = (
        (-bound, bound) if dtype.is_float else (max(dtype.min_value, -bound), min(dtype.max_value, bound))
    )
    return rng.integers(low, high + 1, size=shape)


def expected_dot(a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulator) -> torch.Tensor:
    """``a @ b + c`` exactly (integers: wrapped into the accumulator's dtype), as the output tensor."""
    exact = a.astype(np.int64) @ b.astype(np.int64) + c.astype(np.int64)
    if accumulator.is_float:
        return torch.from_numpy(exact.astype(np.float64)).to(TORCH[accumulator])
    half = 2 ** (accumulator.nbits - 1)
    wrapped = exact if accumulator.nbits == 64 else (exact + half) % (2 * half) - half
    return torch.from_numpy(wrapped).to(TORCH[accumulator])


CASES = [
    # operand, accumulator, m, n, k, warps, bound (products and sums stay exact in the accumulator)
    (tv.float16, tv.float32, 32, 32, 32, 4, 8),
    (tv.float16, tv.float16, 32, 16, 32, 2, 4),
    (tv.bfloat16, tv.float32, 16, 24, 48, 2, 8),
    (tv.bfloat16, tv.bfloat16, 16, 8, 16, 1, 2),
    (tv.int8, tv.int32, 32, 16, 64, 4, 128),
    (tv.int8, tv.int16, 16, 16, 64, 2, 128),  # wraps in int16
    (tv.int8, tv.int64, 16, 8, 32, 1, 128),
    (tv.uint8, tv.int32, 16, 16, 32, 1, 255),
    (tv.int4, tv.int32, 32, 8, 128, 2, 8),
    (tv.uint4, tv.int32, 16, 8, 64, 1, 15),
    (tv.float8_e4m3, tv.float32, 16, 16, 64, 2, 8),
    (tv.float8_e5m2, tv.float32, 32, 8, 32, 4, 8),
    (tv.float32, tv.float32, 7, 5, 9, 1, 8),  # no mma: one multiply-add a thread
    (tv.float16, tv.float32, 5, 3, 11, 2, 8),
    (tv.int2, tv.int8, 6, 10, 7, 4, 2),
    (tv.int16, tv.int32, 9, 4, 5, 1, 1000),
]


def run_dot(monkeypatch, rng: np.random.Generator, warps: int, operand, a, b, c, out) -> tuple[list, list]:
    """The dot kernel run by both executors with random dot layouts (the operands loaded in them)."""
    (m, n), k = tuple(out.shape), a.shape[1]
    atom, quotient, layouts = random_dot_layouts(rng, operand, m, n, k, 32 * warps)
    monkeypatch.setattr(
        INFERENCE, "LayoutChooser", lambda num_threads: ChosenDot(num_threads, atom, quotient)
    )
    return run_both(dot_kernel(warps), (1,), a, b, c, out, LAYOUTS=layouts)


@pytest.mark.parametrize(("operand", "accumulator", "m", "n", "k", "warps", "bound"), CASES, ids=str)
def test_a_dot_computes_exactly_what_the_reference_does(
    monkeypatch, operand, accumulator, m, n, k, warps, bound
):
    rng = np.random.default_rng([m, n, k, warps, operand.nbits])
    a, b = small_values(rng, operand, (m, k), bound), small_values(rng, operand, (k, n), bound)
    c = small_values(rng, accumulator, (m, n), 16)
    tensors = packed(a, operand), packed(b, operand), torch.from_numpy(c).to(TORCH[accumulator])
    reference, threads = run_dot(monkeypatch, rng, warps, operand, *tensors, poisoned((m, n), accumulator))
    assert_same_bytes(reference, threads)
    assert torch.equal(threads[3], expected_dot(a, b, c, accumulator))


def test_float_dots_of_random_values_are_within_float32_summation_bounds(monkeypatch):
    rng = np.random.default_rng(5)
    m, n, k = 32, 16, 64
    a = torch.from_numpy(rng.standard_normal((m, k))).half()
    b = torch.from_numpy(rng.standard_normal((k, n))).half()
    c = torch.from_numpy(rng.standard_normal((m, n))).float()
    _, threads = run_dot(monkeypatch, rng, 4, tv.float16, a, b, c, torch.full((m, n), float("nan")))
    exact = a.double() @ b.double() + c.double()
    # k + 1 float32 additions: each rounding at most 2^-24 of the running magnitude
    bound = (k + 1) * 2.0**-24 * (a.double().abs() @ b.double().abs() + c.double().abs())
    assert torch.all((threads[3].double() - exact).abs() <= bound)


def test_float8_on_sm_80_as_float16_mma_computes_what_float8_mma_does(monkeypatch):
    # the Thread IR the launch runs, and the same Tile IR lowered for sm_80 (no float8 tensor cores)
    rng = np.random.default_rng(89)
    m, n, k = 32, 16, 64
    a, b = small_values(rng, tv.float8_e4m3, (m, k), 8), small_values(rng, tv.float8_e4m3, (k, n), 8)
    c = small_values(rng, tv.float32, (m, n), 16)
    atom, quotient, layouts = random_dot_layouts(rng, tv.float8_e4m3, m, n, k, 64)
    monkeypatch.setattr(
        INFERENCE, "LayoutChooser", lambda num_threads: ChosenDot(num_threads, atom, quotient)
    )
    arguments = (packed(a, tv.float8_e4m3), packed(b, tv.float8_e4m3), torch.from_numpy(c).float())
    out, kernel = poisoned((m, n), tv.float32), dot_kernel(2)
    values = bind_arguments(kernel.signature, (*arguments, out), {"LAYOUTS": layouts})
    compiled = kernel.compiled(values)
    sm_80 = verify(lower_to_threads(dataclasses.replace(compiled.tile_program, target="sm_80")), THREAD_IR)
    shapes = {
        instruction.shape for instruction in walk_instructions(sm_80.body) if isinstance(instruction, Mma)
    }
    assert shapes == {"m16n8k16"}
    execute_threads(sm_80, flat_values(compiled.parameters, values), (1,))
    assert torch.equal(out, expected_dot(a, b, c, tv.float32))


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mma_per_iteration(program) -> list[Mma]:
    loop = next(
        instruction for instruction in walk_instructions(program.body) if isinstance(instruction, For)
    )
    return [instruction for instruction in walk_instructions(loop.body) if isinstance(instruction, Mma)]


def test_the_fp16_matmul_example_multiplies_with_m16n8k16():
    example = load_example("matmul_fp16")
    a, b, c = torch.zeros(70, 200).half(), torch.zeros(200, 96).half(), torch.zeros(70, 96).half()
    program = lowered_kernel(example.matmul, a, b, c, BM=32, BN=32, BK=32, STAGES=2)
    # 32 x 32 of 16 x 8 atoms is 2 x 4 of them, 2 along k = 32: 16 mma a block, 4 a warp each iteration
    instructions = mma_per_iteration(program)
    assert len(instructions) == 4 and {instruction.shape for instruction in instructions} == {"m16n8k16"}


def test_the_fp16_matmul_example_is_exact_on_small_integers():
    # every partial sum of small integers is exact in float32: the same bits in any order
    example = load_example("matmul_fp16")
    generator = torch.Generator().manual_seed(3)
    a = torch.randint(-3, 4, (70, 200), generator=generator).half()
    b = torch.randint(-3, 4, (200, 96), generator=generator).half()
    c = torch.full((70, 96), float("nan")).half()
    reference, threads = run_both(example.matmul, (3, 3), a, b, c, BM=32, BN=32, BK=32, STAGES=2)
    assert_same_bytes(reference, threads)
    assert torch.equal(threads[2], (a.double() @ b.double()).half())


def test_the_w4a16_example_is_exact_on_small_integers():
    # int4 codes scaled by powers of two times small-integer activations: every partial sum exact
    example = load_example("w4a16_matmul")
    generator = torch.Generator().manual_seed(4)
    m, n, k, group = 5, 64, 128, 32
    x = torch.randint(-4, 5, (m, k), generator=generator).half()
    codes = torch.randint(-8, 8, (k, n), generator=generator)
    nibbles = (codes & 0xF).to(torch.uint8)
    packed_weights = nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)
    scales = (2.0 ** torch.randint(-2, 2, (k // group, n), generator=generator)).half()
    out = torch.full((m, n), float("nan")).half()
    arguments = (x, packed_weights, scales, out)
    reference, threads = run_both(example.w4a16_matmul, (1, 2), *arguments, BM=16, BN=32, GROUP=group)
    assert_same_bytes(reference, threads)
    weights = codes.double() * scales.double().repeat_interleave(group, dim=0)
    assert torch.equal(threads[3], (x.double() @ weights).half())


def test_the_w4a16_example_multiplies_with_m16n8k16():
    example = load_example("w4a16_matmul")
    x, scales = torch.zeros(5, 256).half(), torch.zeros(4, 96).half()
    weights, out = torch.zeros(256, 48, dtype=torch.uint8), torch.zeros(5, 96).half()
    program = lowered_kernel(example.w4a16_matmul, x, weights, scales, out, BM=16, BN=32, GROUP=64)
    # 16 x 32 is 1 x 4 atoms, one a warp, and 64 / 16 = 4 of them along k each group
    instructions = mma_per_iteration(program)
    assert len(instructions) == 4 and {instruction.shape for instruction in instructions} == {"m16n8k16"}
