"""Thread IR programs that run ``wgmma`` on operands laid out in shared memory as the PTX ISA's canonical
K-major layouts say (or A in registers, as its register fragment says), and their numpy reference. The
layouts, the descriptor bits and the register orders of A and D are transcribed here from the ISA (sections
"Shared Memory Matrix Layout", "Matrix Descriptor Format", "Matrix Fragments for wgmma.mma_async.m64nNk16"),
apart from tilevm's own code, which they check.

A case's kernel copies a *shared image* (the bytes of every warpgroup's A and B, placed by these layouts,
built here on the host) from global memory into shared memory, fences the async proxy, waits at a barrier,
then each warpgroup multiplies its own A (64 x K) and B (K x n) in K / 16 chained wgmma starting from C (its
n / 2 registers per thread loaded from global memory, in the accumulator order), and stores the registers
that its wait gives: ``d[thread, i]`` is register i of the block's thread ``thread``. With A in registers,
the image holds only B, and each thread loads its four A registers of each step from ``%fragments`` (its
``fragments[thread]``, built here by the ISA's figure); the waits hold them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tilevm.dtypes import DType, encode, float16

__all__ = [
    "Case",
    "Data",
    "a_fragment_positions",
    "accumulator_positions",
    "kernel_arguments",
    "make_data",
    "program_text",
]

#: rows of A, the threads of a warpgroup
M, WARPGROUP = 64, 128
#: descriptor swizzle modes (bits 62-63) by swizzle width in bytes
MODES = {0: 0, 128: 1, 64: 2, 32: 3}
#: the shared image's regions start on these boundaries: the 128-byte swizzle's pattern, 8 x 128 bytes
REGION_ALIGNMENT = 1024


@dataclass(frozen=True)
class Case:
    """``n`` columns of B and D, ``dtype`` of A and B, ``swizzle`` bytes (0 for none), ``steps`` wgmma of
    16 values of k each; without swizzle, ``k_outer`` puts the core matrices of one k block of all rows
    together (LBO = rows x 16 bytes, SBO = 128), else those of one 8-row group (LBO = 128).
    ``a_in_registers``: A is each thread's fragment registers, not in shared memory."""

    n: int
    dtype: DType
    swizzle: int
    steps: int
    warpgroups: int = 1
    k_outer: bool = False
    a_in_registers: bool = False

    @property
    def depth(self) -> int:
        return 16 * self.steps

    @property
    def num_threads(self) -> int:
        return WARPGROUP * self.warpgroups


def _aligned(size: int) -> int:
    return -(-size // REGION_ALIGNMENT) * REGION_ALIGNMENT


def operand_layout(case: Case, rows: int) -> tuple[np.ndarray, int, int, list[int]]:
    """Where row r, value k of a K-major operand of ``rows`` rows lies (bytes from its region's start, which
    is 1024-byte aligned), its leading and stride byte offsets, and each step's start offset."""
    row = np.arange(rows)[:, None]
    k = np.arange(case.depth)[None, :]
    width = case.swizzle
    if not width:  # 8x8 core matrices of 16-byte rows
        leading, stride = (rows * 16, 128) if case.k_outer else (128, case.depth // 8 * 128)
        offsets = (row // 8) * stride + (k // 8) * leading + (row % 8) * 16 + 2 * (k % 8)
        return offsets, leading, stride, [2 * step * leading for step in range(case.steps)]
    # panels of width / 2 values of k, each rows x width bytes; within one, 8-row groups of 8 W bytes
    stride = 8 * width
    panel, within = (2 * k) // width, (2 * k) % width
    linear = panel * rows * width + (row // 8) * stride + (row % 8) * width + within
    bits = width // 16 - 1  # Swizzle<log2(W / 16), 4, 3>: address bits [4, ...) ^= bits [7, ...)
    offsets = linear ^ (((linear >> 7) & bits) << 4)
    starts = [(32 * step) // width * rows * width + (32 * step) % width for step in range(case.steps)]
    return offsets, 16, stride, starts


def descriptor_bits(leading: int, stride: int, swizzle: int) -> int:
    """The descriptor's bits other than the start address (base offset 0)."""
    return (leading >> 4) << 16 | (stride >> 4) << 32 | MODES[swizzle] << 62


def accumulator_positions(n: int) -> tuple[np.ndarray, np.ndarray]:
    """D's row and column ``[128, n / 2]`` of each thread's register i = 4 j + r: row 16 (warp % 4) +
    lane / 4 + 8 (r / 2), column 8 j + 2 (lane % 4) + r % 2 (the ISA's Figure of the m64nNk16 D)."""
    thread = np.arange(WARPGROUP)[:, None]
    register = np.arange(n // 2)[None, :]
    warp, lane, j, r = thread // 32, thread % 32, register // 4, register % 4
    return 16 * (warp % 4) + lane // 4 + 8 * (r // 2), 8 * j + 2 * (lane % 4) + r % 2


def a_fragment_positions() -> tuple[np.ndarray, np.ndarray]:
    """A's row and column ``[128, 4, 2]`` of element e (0 the low half) of each thread's register r, A in
    registers (the ISA's Figure of the m64nNk16 A: warp w % 4 holds rows 16 (w % 4) on, as mma.sync m16n8k16
    holds its A): row 16 (warp % 4) + lane / 4 + 8 (r % 2), column 2 (lane % 4) + e + 8 (r / 2)."""
    thread = np.arange(WARPGROUP)[:, None, None]
    register, element = np.arange(4)[None, :, None], np.arange(2)[None, None, :]
    warp, lane = thread // 32, thread % 32
    rows = 16 * (warp % 4) + lane // 4 + 8 * (register % 2) + 0 * element
    return rows, 2 * (lane % 4) + element + 8 * (register // 2)


@dataclass(frozen=True)
class Data:
    """A case's inputs (``image``: the shared image; ``c``: each thread's C registers; ``fragments``: each
    thread's A registers, step by step, as float16 or bfloat16 codes, where A is in registers) and the
    float64 matrices they hold, per warpgroup."""

    image: np.ndarray
    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c_matrix: np.ndarray
    fragments: np.ndarray | None = None

    def expected(self, n: int) -> np.ndarray:
        """What each thread's registers hold after the wgmma: A @ B + C rounded to float32, ``[threads,
        n / 2]``."""
        d = (self.a @ self.b + self.c_matrix).astype(np.float32)
        rows, columns = accumulator_positions(n)
        return d[:, rows, columns].reshape(-1, n // 2)


def _operand_bytes(case: Case, rows: int) -> int:
    """The bytes of an operand: whole swizzled rows of W bytes, even where k fills only part of them."""
    if not case.swizzle:
        return rows * case.depth * 2
    return -(-2 * case.depth // case.swizzle) * rows * case.swizzle


def _region_sizes(case: Case) -> tuple[int, int]:
    """The bytes of one warpgroup's A region and of its whole region (A then B)."""
    a_size = 0 if case.a_in_registers else _aligned(_operand_bytes(case, M))
    return a_size, a_size + _aligned(_operand_bytes(case, case.n))


def make_data(case: Case, rng: np.random.Generator) -> Data:
    """Seeded small integers (every sum exact in float32) for each warpgroup, placed in the image."""
    groups, n = case.warpgroups, case.n
    a = rng.integers(-4, 5, size=(groups, M, case.depth)).astype(np.float64)
    b = rng.integers(-4, 5, size=(groups, case.depth, n)).astype(np.float64)
    c_matrix = rng.integers(-8, 9, size=(groups, M, n)).astype(np.float64)
    a_size, region = _region_sizes(case)
    image = np.zeros(groups * region, dtype=np.uint8)
    for group in range(groups):
        # B's descriptor describes B transposed: row j holds column j of B
        operands = [(group * region + a_size, b[group].T)]
        if not case.a_in_registers:
            operands.append((group * region, a[group]))
        for base, matrix in operands:
            offsets = operand_layout(case, matrix.shape[0])[0]
            assert np.unique(offsets).size == offsets.size, "the layout maps two elements to one place"
            codes = encode(matrix, case.dtype).astype(np.uint16)
            image[base + offsets] = codes & 0xFF
            image[base + offsets + 1] = codes >> 8
    rows, columns = accumulator_positions(n)
    c = c_matrix[:, rows, columns].reshape(-1, n // 2).astype(np.float32)
    return Data(image, c, a, b, c_matrix, _fragments(case, a) if case.a_in_registers else None)


def kernel_arguments(case: Case, data: Data, d: torch.Tensor, base: torch.Tensor) -> list[torch.Tensor]:
    """The kernel's arguments on the host: the image, C, the outputs ``d`` and ``base`` (the caller poisons
    them), then A's fragments where A is in registers (their codes, viewed as the case's dtype)."""
    arguments = [torch.from_numpy(data.image), torch.from_numpy(data.c.reshape(-1)), d, base]
    if data.fragments is not None:
        codes = torch.from_numpy(data.fragments.reshape(-1).view(np.int16))
        arguments.append(codes.view(torch.float16 if case.dtype == float16 else torch.bfloat16))
    return arguments


def _fragments(case: Case, a: np.ndarray) -> np.ndarray:
    """Each thread's A registers of every step, ``[threads, steps * 8]`` codes: step s, register r, element
    e at ``8 s + 2 r + e``."""
    rows, columns = a_fragment_positions()
    steps = 16 * np.arange(case.steps)[None, :, None, None]
    values = a[:, rows[:, None], columns[:, None] + steps]  # [groups, 128, steps, 4, 2]
    return encode(values.reshape(case.num_threads, -1), case.dtype).astype(np.uint16)


def _descriptor(region: str, start: int, constant: int) -> str:
    address = f"shared_address(shared_pointer<uint8>({region} + {start}))"
    return f"((cast<uint64>({address}) & 262143:uint64) >> 4:uint64) | {constant}:uint64"


def _a_registers(step: int) -> list[str]:
    return [f"%f{step}_{register}" for register in range(4)]


def _held(case: Case, steps: range) -> str:
    """The held field of a wait for the wgmma of ``steps``: their A registers, where A is in registers."""
    registers = [name for step in steps for name in _a_registers(step)]
    return f", held=[{', '.join(registers)}]" if case.a_in_registers and registers else ""


def program_text(case: Case) -> str:
    """The kernel ``wgmma_case(%image, %c, %d, %base)`` of ``case`` (then ``%fragments`` where A is in
    registers); ``%base`` receives the shared address of the block's shared memory (0 in the interpreter;
    the GPU may place it after a reserved area)."""
    n, count = case.n, case.n // 2
    a_size, region = _region_sizes(case)
    threads = case.num_threads
    shared_bytes = case.warpgroups * region
    a_layout, b_layout = operand_layout(case, M), operand_layout(case, n)
    fragments = f", %fragments: ptr<{case.dtype}> divisibility=16" if case.a_in_registers else ""
    lines = [
        f"kernel wgmma_case(%image: ptr<uint8> divisibility=16, %c: ptr<float32> divisibility=16, "
        f"%d: ptr<float32> divisibility=16, %base: ptr<uint32> divisibility=16{fragments}) "
        f"num_threads={threads} shared_bytes={shared_bytes} {{",
        "  %t: int32 = let(value=thread_index())",
        f"  for %i: int32 in range(0, {-(-shared_bytes // (16 * threads))}, 1) {{",
        f"    %chunk: int32 = let(value=(%i * {threads}) + %t)",
        f"    %inside: bool = let(value=%chunk < {shared_bytes // 16})",
        "    %bytes: vector<uint8, 16> = load(pointer=pointer_add(%image, %chunk * 16), width=16, "
        "predicate=%inside)",
        "    store(pointer=shared_pointer<uint8>(%chunk * 16), value=%bytes, predicate=%inside)",
        "  }",
        "  fence_proxy_async()",
        "  barrier()",
        "  store(pointer=%base, value=shared_address(shared_pointer<uint8>(0)), predicate=%t == 0)",
        f"  %region: int32 = let(value=(%t // {WARPGROUP}) * {region})",
    ]
    c_registers = []
    for quad in range(count // 4):
        address = f"pointer_add(%c, ((%t * {count}) + {4 * quad}) * 4)"
        lines.append(f"  %cv{quad}: vector<float32, 4> = load(pointer={address}, width=16)")
        c_registers += [f"element(%cv{quad}, {index})" for index in range(4)]
    operands = (
        [("b", b_layout, a_size)] if case.a_in_registers else [("a", a_layout, 0), ("b", b_layout, a_size)]
    )
    for step in range(case.steps):
        for name, (_, leading, stride, starts), offset in operands:
            value = _descriptor(
                "%region", offset + starts[step], descriptor_bits(leading, stride, case.swizzle)
            )
            lines.append(f"  %{name}{step}: uint64 = let(value={value})")
        for register, name in enumerate(_a_registers(step) if case.a_in_registers else []):
            # the thread's 8 codes of a step are fragments[thread, 8 step ... 8 step + 7], 4 bytes a register
            address = f"pointer_add(%fragments, ((%t * {8 * case.steps}) + {8 * step + 2 * register}) * 2)"
            lines.append(f"  {name}: vector<{case.dtype}, 2> = load(pointer={address}, width=4)")
    lines.append("  wgmma_fence()")
    accumulators = c_registers
    half = case.steps // 2
    for step in range(case.steps):
        outputs = [f"%x{step}_{index}" for index in range(count)]
        declared = ", ".join(f"{output}: float32" for output in outputs)
        a = f"[{', '.join(_a_registers(step))}]" if case.a_in_registers else f"%a{step}"
        lines.append(
            f"  {declared} = wgmma(n={n}, dtype={case.dtype}, a={a}, b=%b{step}, "
            f"c=[{', '.join(accumulators)}])"
        )
        accumulators = outputs
        if step + 1 == half:  # two groups: the first one committed before the second one's wgmma
            lines.append("  wgmma_commit_group()")
    lines.append("  wgmma_commit_group()")
    lines.append(f"  wgmma_wait_group(pending=1{_held(case, range(half))})")
    waited = [f"%e{index}" for index in range(count)]
    declared = ", ".join(f"{output}: float32" for output in waited)
    lines.append(
        f"  {declared} = wgmma_wait_group(pending=0, accumulators=[{', '.join(accumulators)}]"
        f"{_held(case, range(half, case.steps))})"
    )
    for quad in range(count // 4):
        address = f"pointer_add(%d, ((%t * {count}) + {4 * quad}) * 4)"
        lines.append(
            f"  store(pointer={address}, value=pack([{', '.join(waited[4 * quad : 4 * quad + 4])}]))"
        )
    lines.append("}")
    return "\n".join(lines)
