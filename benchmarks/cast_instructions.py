"""PTX instructions per code of ``tv.cast`` from each low-bit dtype to float16 and bfloat16, as the quantized
GEMM uses it: a thread's codes come from 16-byte loads, contiguous in its registers (``tv.view`` of the
loaded uint8 tile), and are cast to a register tile of the half dtype.

The kernel is compiled for sm_90 (no GPU needed). The instructions on the data's way are found by data flow in
the PTX: those that read, directly or through other instructions, a register a global load wrote, and whose
result a global store reads (directly or through others). Address arithmetic, bounds checks, constants (moves
of immediates), copies of a register and the loads and stores themselves are not counted; a pack of two halves
(``mov.b32 %r, {%h, %h}``) is. The same count for a kernel that stores the viewed codes back as bytes, with no
cast, is subtracted opcode by opcode: what the loads' data costs before any cast (e.g. LLVM's byte shuffles of
a window of three 16-byte loads, column ``load``) is not the cast's. Each dtype is measured on the codes of
one pre-layout chunk of a thread (``128 / gcd(b, 128)`` codes in ``b / gcd(b, 128)`` loads of 16 bytes).

    python benchmarks/cast_instructions.py [--target sm_90] [DTYPE ...]
"""

from __future__ import annotations

import argparse
import collections
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

import tilevm as tv
from tilevm.layout import local, spatial

#: the code dtypes of the quantized GEMM: every integer width, and the small floats up to 8 bits
DEFAULT_DTYPES = (
    *(f"int{bits}" for bits in range(1, 9)),
    *(f"uint{bits}" for bits in range(1, 9)),
    "float3_e1m1", "float4_e2m1", "float5_e2m2", "float6_e2m3", "float6_e3m2", "float7_e3m3",
    "float8_e4m3", "float8_e5m2", "ue4m3", "e8m0",
)  # fmt: skip
TARGETS = ("float16", "bfloat16")
LANES = 32


@tv.kernel(num_warps=1)
def cast_chunk(
    packed: tv.Tensor, out: tv.Tensor, CODE: tv.constexpr, NBYTES: tv.constexpr, COUNT: tv.constexpr
):
    """Each lane casts the ``COUNT`` codes of its ``NBYTES`` contiguous bytes to ``out``'s dtype."""
    layout = spatial(LANES, 1) * local(1, NBYTES)
    window = tv.load_global(packed, offsets=[0, 0], shape=[LANES, NBYTES], layout=layout)
    tv.store_global(out, tv.cast(tv.view(window, CODE, [LANES, COUNT]), out.dtype), offsets=[0, 0])


@tv.kernel(num_warps=1)
def cast_twins(
    packed: tv.Tensor, out: tv.Tensor, CODE: tv.constexpr, NBYTES: tv.constexpr, COUNT: tv.constexpr
):
    """``cast_chunk`` of codes stored as twins: each 32-bit word holds the low elements of its pairs in
    its low half and the high elements at the same bits of its high half (as ``prelayout`` stores the
    quantized GEMM's weights); a ``permute`` and a ``convert_layout`` put each pair's elements side by side
    in the thread's slots before the cast (a gather, which the cast reads through). Block ``i`` casts the
    rows ``32 i ..`` (``tests/test_lower_casts_twins.py`` runs every code in every slot through it)."""
    row = tv.block_idx(0) * LANES
    layout = spatial(LANES, 1) * local(1, NBYTES)
    window = tv.load_global(packed, offsets=[row, 0], shape=[LANES, NBYTES], layout=layout)
    per_half = 16 // CODE.nbits
    halves = tv.view(window, CODE, [LANES, COUNT // (2 * per_half), 2, per_half])
    pairs = tv.view(tv.permute(halves, [0, 1, 3, 2]), CODE, [LANES, COUNT])
    pairs = tv.convert_layout(pairs, spatial(LANES, 1) * local(1, COUNT))
    tv.store_global(out, tv.cast(pairs, out.dtype), offsets=[row, 0])


@tv.kernel(num_warps=1)
def copy_chunk(
    packed: tv.Tensor, out: tv.Tensor, CODE: tv.constexpr, NBYTES: tv.constexpr, COUNT: tv.constexpr
):
    """``cast_chunk`` without the cast: the codes stored back as the bytes they came from."""
    layout = spatial(LANES, 1) * local(1, NBYTES)
    window = tv.load_global(packed, offsets=[0, 0], shape=[LANES, NBYTES], layout=layout)
    codes = tv.view(window, CODE, [LANES, COUNT])
    tv.store_global(out, tv.view(codes, tv.uint8, [LANES, NBYTES]), offsets=[0, 0])


def chunk(bits: int) -> tuple[int, int]:
    """(bytes, codes) of a thread's pre-layout chunk of ``bits``-bit codes: whole 16-byte loads."""
    loads = bits // math.gcd(bits, 128)
    return 16 * loads, 128 * loads // bits


def cast_ptx(code: tv.DType, target: torch.dtype | None, machine: str = "sm_90", twins: bool = False) -> str:
    """The PTX of ``cast_chunk`` (``cast_twins`` with ``twins``) for ``code`` to ``target`` (``copy_chunk``'s
    when None)."""
    nbytes, count = chunk(code.nbits)
    packed = torch.zeros(LANES, nbytes, dtype=torch.uint8)
    if target is None:
        out = torch.zeros(LANES, nbytes, dtype=torch.uint8)
        return copy_chunk.ptx(packed, out, CODE=code, NBYTES=nbytes, COUNT=count, target=machine)
    out = torch.zeros(LANES, count, dtype=target)
    kernel = cast_twins if twins else cast_chunk
    return kernel.ptx(packed, out, CODE=code, NBYTES=nbytes, COUNT=count, target=machine)


@dataclass(frozen=True)
class Instruction:
    opcode: str  # with its suffixes, e.g. "add.rn.f16x2"
    defs: tuple[str, ...]
    uses: tuple[str, ...]


_REGISTER = re.compile(r"%[a-z]+\d+")
_GUARD = re.compile(r"^@!?%p\d+\s+")


def instructions(ptx: str) -> list[Instruction]:
    """The body's instructions with the registers each writes and reads (a store writes none; a guard
    predicate is read)."""
    found = []
    for raw in ptx.split("{", 1)[1].splitlines():
        line = raw.split("//")[0].strip()
        if not line or line.endswith(":") or line.startswith((".", "{", "}")):
            continue
        guard = _GUARD.match(line)
        uses = _REGISTER.findall(guard.group(0)) if guard else []
        line = line[guard.end() :] if guard else line
        opcode, _, operands = line.rstrip(";").partition(" ")
        if opcode.startswith(("st.", "bra", "ret")) or not operands:
            found.append(Instruction(opcode, (), (*uses, *_REGISTER.findall(operands))))
            continue
        # the first operand (a register, or a {vector} of them) is what the instruction writes
        first, rest = _split_first(operands)
        found.append(Instruction(opcode, tuple(_REGISTER.findall(first)), (*uses, *_REGISTER.findall(rest))))
    return found


def _split_first(operands: str) -> tuple[str, str]:
    operands = operands.strip()
    if operands.startswith("{"):
        end = operands.index("}") + 1
        return operands[:end], operands[end:]
    first, _, rest = operands.partition(",")
    return first, rest


def _copies(item: Instruction) -> bool:
    """A move of one register to another, which ptxas coalesces (a pack ``mov.b32 %r, {%h, %h}`` is
    not one: it reads two)."""
    return item.opcode.startswith("mov") and len(item.defs) == 1 and len(item.uses) == 1


def data_instructions(ptx: str) -> list[Instruction]:
    """The instructions between the global loads' data and the global stores' data (see the docstring),
    register copies left out."""
    body = instructions(ptx)
    loaded = {register for item in body if item.opcode.startswith("ld.global") for register in item.defs}
    stored = set()
    for item in body:
        if item.opcode.startswith("st.global"):
            stored.update(item.uses[1:] if item.uses else ())  # the address register comes first
    forward, backward = set(loaded), set(stored)
    changed = True
    while changed:  # PTX after LLVM is not SSA (phi copies): iterate to the fixed point
        changed = False
        for item in body:
            if item.opcode.startswith(("ld.", "st.")):
                continue
            if forward.intersection(item.uses) and not forward.issuperset(item.defs):
                forward.update(item.defs)
                changed = True
            if backward.intersection(item.defs) and not backward.issuperset(item.uses):
                backward.update(item.uses)
                changed = True
    return [
        item
        for item in body
        if not item.opcode.startswith(("ld.", "st."))
        and not _copies(item)
        and forward.intersection(item.uses)
        and backward.intersection(item.defs)
    ]


def opcodes(ptx: str) -> collections.Counter:
    """How many of each opcode (its first part: ``prmt``, ``lop3``, ``add``, ...) lie on the data's way."""
    return collections.Counter(item.opcode.split(".")[0] for item in data_instructions(ptx))


def measure(
    code: tv.DType, target: torch.dtype | None, machine: str = "sm_90", twins: bool = False
) -> collections.Counter:
    """The opcodes of the cast of a thread's chunk of ``code`` to ``target`` (the copy's subtracted; with
    ``target`` None, the copy's), of codes stored as twins with ``twins`` (widths 1, 2, 4 and 8)."""
    copy = opcodes(cast_ptx(code, None, machine))
    if target is None:
        return copy
    cast = opcodes(cast_ptx(code, target, machine, twins))
    cast.subtract(copy)
    return cast


def per_code(code: tv.DType, counts: collections.Counter) -> float:
    return sum(counts.values()) / chunk(code.nbits)[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dtypes", nargs="*", default=list(DEFAULT_DTYPES), help="code dtypes (default all)")
    parser.add_argument("--target", default="sm_90", help="the PTX target (default sm_90)")
    arguments = parser.parse_args(argv)
    print(
        f"{'dtype':<13} {'codes':>5} {'load':>6} "
        + " ".join(f"{name:>9}  {'opcodes':<36}" for name in TARGETS)
    )
    for name in arguments.dtypes:
        code = tv.dtype(name)
        cells = []
        for target in TARGETS:
            counts = measure(code, getattr(torch, target), arguments.target)
            text = " ".join(f"{opcode} {number}" for opcode, number in counts.most_common() if number)
            cells.append(f"{per_code(code, counts):>9.3f}  {text:<36}")
        load = per_code(code, measure(code, None, arguments.target))
        print(f"{name:<13} {chunk(code.nbits)[1]:>5} {load:>6.3f} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
