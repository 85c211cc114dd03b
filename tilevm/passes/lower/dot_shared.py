"""Lowering of ``dot_shared`` (``accumulator + a @ b`` with ``a`` and ``b`` in shared memory).

The accumulator is in the warpgroups' layout (``tilevm.layout.warpgroup.warpgroup_accumulator``), which is
the ``mma.sync`` m16n8 accumulator fragments of warps stacked four by four along the rows: so the same Tile
IR lowers two ways.

- **By the warpgroups** (``wgmma``, where the target has it: sm_90a, and the CPU interpreter), when the
  shared operands lie in a canonical layout (``tilevm.layout.warpgroup.operand_form``) at addresses that
  keep their swizzle patterns aligned: each warpgroup runs, for each of its tiles of 64 rows by at most
  256 columns (the accumulator's local repeats), one ``wgmma .m64nNk16`` per 16 values of k, whose matrix
  descriptors start at the tile's first row (of A) and column (of B) and move 32 bytes along the rows for
  each 16 values of k. An A in registers (``warpgroup_operand_a``) gives each instruction the thread's four
  registers of its m16n8k16 A fragment instead of a descriptor. The registers of a tile are a contiguous
  run of the thread's accumulator, in the instruction's order. A ``wgmma.fence`` comes first and one
  commit last, then a wait for all of them, so that the result is complete when the dot is; a dot with
  ``wait`` false skips the wait, and a ``dot_wait`` later waits and passes the running results' registers
  through it (``Lowering.in_flight`` lists them; the A registers of running dots are held to it too,
  ``Lowering.held``). The first ``sync`` after a ``store_shared`` into a tile the tensor cores read
  fences the async proxy before its barrier (``Lowering.async_proxy_views``), so that those ordinary
  writes are seen by the tensor cores; ``cp.async`` writes need no fence, as in CUTLASS and Triton.
- **Through registers** (every other case): the shared operands are read into the ``mma.sync`` operand
  layouts that fit the accumulator (``ldmatrix`` where the shared layout allows; an A in registers is in
  its layout already) and multiplied as ``dot`` is.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import float32, int32, uint64
from tilevm.ir import Dot, DotWait, LoadShared, Scope, SharedDot, TileType, Var
from tilevm.ir.expr import BinaryExpr, Const, Expr
from tilevm.ir.thread import (
    Gather,
    SharedAddress,
    SharedPointer,
    Wgmma,
    WgmmaCommitGroup,
    WgmmaFence,
    WgmmaWaitGroup,
)
from tilevm.ir.thread.warpgroup import WARPGROUP_SIZE, matrix_descriptor_expr
from tilevm.ir.types import ScalarType
from tilevm.layout import local, mma_fragments
from tilevm.layout.warpgroup import (
    WARPGROUP_ROWS,
    OperandForm,
    operand_form,
    warpgroup_operand_a,
    warpgroup_tiling,
)
from tilevm.passes.lower.dot import FragmentRegisters, atom_pairs, mma_steps
from tilevm.passes.lower.lowering import Handler, Lowering, SharedTile, tile_layout, vector_length
from tilevm.passes.lower.registers import gather
from tilevm.passes.lower.shared_address import add, divisibility, scale
from tilevm.passes.options import WGMMA_TARGETS

__all__ = ["HANDLERS"]

#: values of k of one ``mma.sync`` m16n8k16 atom and of one ``wgmma``
_ATOM_K = 16
#: accumulator registers of one m16n8 atom (a wgmma's registers are its n / 8 atoms' in turn)
_ACCUMULATOR_ATOM = 4
#: a descriptor's leading byte offset, which swizzled K-major operands do not use (the ISA assumes 1;
#: CUTLASS writes 16 bytes, as here)
_LEADING_BYTES = 16


@dataclass(frozen=True)
class _Operand:
    tile: SharedTile
    form: OperandForm

    def start(self, row: Expr) -> Expr:
        """The byte offset in shared memory of the operand's row ``row`` (of its rows: A's m, B's n), at its
        first value of k, before swizzling."""
        row_elements = self.form.row_bytes // 2
        elements = add(Const(self.tile.layout.origin, int32), scale(row, row_elements))
        return add(self.tile.base, scale(elements, 2))

    def descriptor(self, lowering: Lowering, row: Expr) -> Expr:
        """The matrix descriptor of the 8-row patterns from row ``row``: rows of ``row_bytes`` swizzled
        over as many bytes, 8 rows (``8 * row_bytes``) from one pattern to the next."""
        pointer = SharedPointer(self.tile.dtype, self.start(row))
        start = lowering.let_once("operand", SharedAddress(pointer))
        return lowering.let_once(
            "descriptor",
            matrix_descriptor_expr(start, _LEADING_BYTES, 8 * self.form.row_bytes, self.form.row_bytes),
        )


def _dot_shared(lowering: Lowering, dot: SharedDot) -> None:
    operands = _warpgroup_operands(lowering, dot)
    if operands is None:
        _through_registers(lowering, dot)
    else:
        _by_warpgroups(lowering, dot, *operands)


class _RegisterA:
    """An A operand in registers (``warpgroup_operand_a``): the four registers of the thread's m16n8k16 A
    fragment that each instruction reads, by the accumulator atom it starts at and the step of k."""

    def __init__(self, lowering: Lowering, dot: SharedDot) -> None:
        fragments = mma_fragments("m16n8k16", dot.a.type.dtype)
        accumulator = tile_layout(dot.accumulator)
        atoms = dot.a.type.shape[1] // _ATOM_K
        # B's layout only pairs the atoms: B itself is read from shared memory
        b = local(atoms, 1) * (accumulator / fragments.c).reduce(-2) * fragments.b
        self.pairs = atom_pairs(tile_layout(dot.a), b, accumulator, fragments)
        registers = mma_steps("m16n8k16", dot.a.type.dtype, lowering.program.target).steps[0][0]
        self.fragments = FragmentRegisters(
            lowering, lowering.tile(dot.a), fragments.a.local_size, [registers], dot.a.type.dtype
        )

    def registers(self, first_register: int, step: int) -> tuple[Expr, ...]:
        atom = first_register // _ACCUMULATOR_ATOM
        return self.fragments.registers(self.pairs[atom][step][0], 0)


def _warpgroup_operands(lowering: Lowering, dot: SharedDot) -> tuple[_Operand | None, _Operand] | None:
    """The operands as the warpgroups read them (None for an A in registers), or None where they cannot
    (the target, the layouts, or addresses not known to keep their swizzle patterns aligned)."""
    if lowering.program.target not in WGMMA_TARGETS:
        return None
    m, n = dot.accumulator.type.shape
    warps = lowering.program.num_threads // 32
    if tile_layout(dot.accumulator) != warpgroup_tiling(m, n, warps).layout:
        return None
    operands: list[_Operand | None] = []
    for operand, k_dim in ((dot.a, 1), (dot.b, 0)):
        if operand.type.scope is Scope.REGISTER:
            if tile_layout(operand) != warpgroup_operand_a(m, n, operand.type.shape[1], warps):
                return None
            operands.append(None)
            continue
        tile = lowering.shared_tile(operand)
        form = operand_form(tile.layout, k_dim, tile.dtype.nbits)
        if form is None or divisibility(lowering, tile.base) % (8 * form.row_bytes):
            return None
        operands.append(_Operand(tile, form))
    return operands[0], operands[1]


def _by_warpgroups(lowering: Lowering, dot: SharedDot, a: _Operand | None, b: _Operand) -> None:
    m, n = dot.accumulator.type.shape
    tiling = warpgroup_tiling(m, n, lowering.program.num_threads // 32)
    group = _integer(lowering, "warpgroup", "floordiv", lowering.thread, WARPGROUP_SIZE)
    group_row = _integer(lowering, "group_row", "floordiv", group, tiling.column_groups)
    group_column = _integer(lowering, "group_column", "mod", group, tiling.column_groups)
    accumulator = lowering.tile(dot.accumulator)
    registers_a = _RegisterA(lowering, dot) if a is None else None
    per_instruction = tiling.columns // 2
    steps = dot.a.type.shape[1] // _ATOM_K
    lowering.emit(WgmmaFence())
    chains, held = [], []
    for repeat_row in range(tiling.row_repeats):
        row = add(
            scale(group_row, WARPGROUP_ROWS), Const(repeat_row * tiling.row_groups * WARPGROUP_ROWS, int32)
        )
        a_descriptor = None if a is None else a.descriptor(lowering, row)
        for repeat_column in range(tiling.column_repeats):
            first = (repeat_row * tiling.column_repeats + repeat_column) * per_instruction
            column = add(
                scale(group_column, tiling.columns),
                Const(repeat_column * tiling.column_groups * tiling.columns, int32),
            )
            b_descriptor = b.descriptor(lowering, column)
            chain = tuple(gather(accumulator, (first + index,)) for index in range(per_instruction))
            for step in range(steps):
                # 16 values of k are 32 bytes along the rows: 2 in the descriptor's 16-byte start field
                moved = Const(2 * step, uint64)
                if registers_a is None:
                    a_step = BinaryExpr("add", a_descriptor, moved) if step else a_descriptor
                else:
                    a_step = registers_a.registers(first, step)
                    held.extend(register for register in a_step if register not in held)
                outputs = tuple(Var("d", ScalarType(float32)) for _ in range(per_instruction))
                lowering.emit(
                    Wgmma(
                        outputs=outputs,
                        n=tiling.columns,
                        dtype=dot.a.type.dtype,
                        a=a_step,
                        b=BinaryExpr("add", b_descriptor, moved) if step else b_descriptor,
                        c=chain,
                    )
                )
                chain = outputs
            chains.extend(chain)
    lowering.emit(WgmmaCommitGroup())
    if dot.accumulator in lowering.in_flight:  # this dot's result carries it on
        lowering.in_flight.remove(dot.accumulator)
    if not dot.wait:  # the registers are read through the wait that completes the dot (``_dot_wait``)
        lowering.bind(dot.output, _registers(lowering, tuple(chains)))
        lowering.in_flight.append(dot.output)
        lowering.held.extend(held)
        return
    results = tuple(Var("acc", ScalarType(float32)) for _ in chains)
    lowering.emit(WgmmaWaitGroup(outputs=results, pending=0, accumulators=tuple(chains), held=tuple(held)))
    lowering.bind(dot.output, _registers(lowering, results))


def _integer(lowering: Lowering, name: str, op: str, value: Expr, divisor: int) -> Expr:
    """``value // divisor`` or ``value % divisor`` (int32), bound once where the body allows."""
    return lowering.let_once(name, BinaryExpr(op, value, Const(divisor, int32)))


def _registers(lowering: Lowering, elements: tuple[Expr, ...]) -> Expr:
    """One register of the float32 ``elements``."""
    return lowering.let("dot", Gather(elements, tuple(range(len(elements)))))


def _dot_wait(lowering: Lowering, wait: DotWait) -> None:
    """``wgmma.wait_group`` where dots run on the warpgroups (nothing where they run through registers,
    complete at once). Waiting for all of them, it passes the registers of every result in flight through
    the wait, so that no read of them can be scheduled above it, and the tiles hold the wait's outputs."""
    if not lowering.warpgroup_dots:
        return
    if wait.pending:
        lowering.emit(WgmmaWaitGroup(pending=wait.pending))
        return
    registers = [lowering.tile(variable) for variable in lowering.in_flight]
    sizes = [vector_length(register.type) for register in registers]
    elements = tuple(
        gather(register, (index,)) for register, size in zip(registers, sizes) for index in range(size)
    )
    outputs = tuple(Var("acc", ScalarType(float32)) for _ in elements)
    held = tuple(lowering.held)
    lowering.emit(WgmmaWaitGroup(outputs=outputs, pending=0, accumulators=elements, held=held))
    start = 0
    for variable, size in zip(lowering.in_flight, sizes):
        lowering.rebind(variable, _registers(lowering, outputs[start : start + size]))
        start += size
    lowering.in_flight.clear()
    lowering.held.clear()


def _through_registers(lowering: Lowering, dot: SharedDot) -> None:
    fragments = mma_fragments("m16n8k16", dot.a.type.dtype)
    quotient = tile_layout(dot.accumulator) / fragments.c
    atoms = dot.a.type.shape[1] // _ATOM_K
    layouts = {
        "a": quotient.reduce(-1) * local(1, atoms) * fragments.a,
        "b": local(atoms, 1) * quotient.reduce(-2) * fragments.b,
    }
    operands = {}
    for name, layout in layouts.items():
        operand = getattr(dot, name)
        if operand.type.scope is Scope.REGISTER:  # A in registers: in this layout already
            operands[name] = operand
            continue
        operands[name] = Var(name, TileType(operand.type.dtype, operand.type.shape, Scope.REGISTER, layout))
        lowering.lower(LoadShared(output=operands[name], tensor=operand, loc=dot.loc))
    a, b = operands["a"], operands["b"]
    lowering.lower(Dot(output=dot.output, a=a, b=b, accumulator=dot.accumulator, loc=dot.loc))


HANDLERS: dict[type, Handler] = {SharedDot: _dot_shared, DotWait: _dot_wait}
