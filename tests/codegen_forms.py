"""Every form of Thread IR code generation can emit, each as a tiny kernel: the instructions and expressions
of ``THREAD_IR`` on every dtype and mode their type rules allow (mma shapes and dtypes, wgmma's n, shuffle
modes, the packed conversions, cp.async sizes, ldmatrix counts, atomics, loads and stores of each width,
arithmetic and casts on the machine dtypes). ``tests/test_codegen_targets.py`` compiles them for every target.

A form is a name, the Thread IR program, and the ``targets.FEATURES`` entry it needs (None: every target).
Operands are loaded from pointer parameters and results stored through others, so that nothing folds away.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from tilevm.dtypes import DType, bfloat16, boolean, dtype, float16, float32, int32, uint8, uint32, uint64
from tilevm.ir import Param, Program
from tilevm.ir.expr import (
    BINARY_OPS,
    ROUNDING_MODES,
    UNARY_OPS,
    BinaryExpr,
    BlockIndex,
    CastExpr,
    Const,
    Expr,
    GridSize,
    UnaryExpr,
    Var,
)
from tilevm.ir.expr import operator_error as scalar_operator_error
from tilevm.ir.inst import Instruction
from tilevm.ir.stmt import AssignScalar, DeclareScalar, For, If, LetScalar, While
from tilevm.ir.thread import (
    Atomic,
    Barrier,
    Bitcast,
    ConvertPack,
    ConvertUnpack,
    CopyAsyncCommitGroup,
    CopyAsyncGroup,
    CopyAsyncWaitGroup,
    Element,
    Fence,
    FenceProxyAsync,
    Gather,
    LaneIndex,
    Ldmatrix,
    Load,
    Lop3,
    Mma,
    Pack,
    PointerAdd,
    PointerCast,
    Prmt,
    Select,
    SharedAddress,
    SharedPointer,
    Shuffle,
    Store,
    ThreadIndex,
    Trap,
    WarpIndex,
    Wgmma,
    WgmmaCommitGroup,
    WgmmaFence,
    WgmmaWaitGroup,
)
from tilevm.ir.thread.compute import (
    MMA_SHAPES,
    PACKED_CONVERSIONS,
    PRMT_MODES,
    SHUFFLE_MODES,
    UNPACKED_CONVERSIONS,
    mma_fragment_types,
)
from tilevm.ir.thread.memory import ATOMIC_OPS, COPY_ASYNC_BYTES, LDMATRIX_COUNTS
from tilevm.ir.thread.warpgroup import A_REGISTERS
from tilevm.ir.types import AddressSpace, PointerType, ScalarType, VectorType

__all__ = ["Form", "all_forms"]

RegisterType = ScalarType | VectorType

#: the dtypes registers compute on (lowering widens every other dtype to one of these first)
MACHINE_DTYPES = tuple(
    dtype(name)
    for name in (
        "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
        "float16", "bfloat16", "float32",
    )
)  # fmt: skip
FLOAT8 = (dtype("float8_e4m3"), dtype("float8_e5m2"))
#: packed register types that arithmetic runs on element by element
PACKED = (VectorType(dtype("float16"), 2), VectorType(dtype("bfloat16"), 2))


@dataclass(frozen=True)
class Form:
    name: str
    program: Program
    feature: str | None = None


class _Kernel:
    """A kernel being built: operands loaded from parameters, results stored to parameters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.params: list[Param] = []
        self.body: list[Instruction] = []

    def pointer(self, element: DType, name: str = "p") -> Var:
        variable = Var(f"{name}{len(self.params)}", PointerType(element))
        self.params.append(Param(variable, 16))
        return variable

    def scalar(self, element: DType) -> Var:
        variable = Var(f"s{len(self.params)}", ScalarType(element))
        self.params.append(Param(variable, 1))
        return variable

    def operand(self, register: RegisterType) -> Var:
        """A register of this type, loaded from a parameter (a bool from comparing two loaded bytes)."""
        if register.dtype == boolean:
            first, second = (self.operand(_like(register, uint8)) for _ in range(2))
            return self.let(BinaryExpr("lt", first, second))
        value = Var("x", register)
        self.body.append(Load(output=value, pointer=self.pointer(register.dtype), width=_bytes(register)))
        return value

    def let(self, value: Expr) -> Var:
        variable = Var("v", value.type)
        self.body.append(LetScalar(output=variable, value=value))
        return variable

    def store(self, value: Expr) -> None:
        """Store a result; a bool one as the int32 0 or 1 (bools alone are no whole byte)."""
        if value.type.dtype == boolean:
            ones, zeros = (Pack((Const(bit, int32),) * _length(value.type)) for bit in (1, 0))
            if isinstance(value.type, ScalarType):
                ones, zeros = Const(1, int32), Const(0, int32)
            value = Select(value, ones, zeros)
        self.body.append(Store(pointer=self.pointer(value.type.dtype, "out"), value=value))

    def program(self, feature: str | None = None) -> Form:
        program = Program(self.name, tuple(self.params), 128, tuple(self.body), shared_bytes=4096)
        return Form(self.name, program, feature)


def _like(register: RegisterType, element: DType) -> RegisterType:
    return ScalarType(element) if isinstance(register, ScalarType) else VectorType(element, register.length)


def _length(register: RegisterType) -> int:
    return register.length if isinstance(register, VectorType) else 1


def _bytes(register: RegisterType) -> int:
    return register.dtype.nbits * _length(register) // 8


def _shared(element: DType, offset: int = 0) -> Expr:
    return SharedPointer(
        element, BinaryExpr("mul", ThreadIndex(), Const(16, int32)) if not offset else Const(offset, int32)
    )


def _name(*parts: object) -> str:
    return "_".join(str(part) for part in parts).replace("<", "").replace(">", "").replace(", ", "x")


# -- compute instructions ------------------------------------------------------------------------------------


def _accumulators(operand: DType) -> tuple[RegisterType, ...]:
    if operand.is_integer:
        return (ScalarType(int32),)
    if operand.name == "float16":
        return ScalarType(float32), VectorType(operand, 2)
    return (ScalarType(float32),)


def _mma_forms() -> Iterator[Form]:
    for shape, names in MMA_SHAPES.items():
        operands = [dtype(name) for name in names]
        for a, b in itertools.product(operands, repeat=2):
            mixable = a.nbits == b.nbits <= 8 and a.is_integer == b.is_integer
            if a != b and not mixable:
                continue
            for accumulator in _accumulators(a):
                kernel = _Kernel(_name("mma", shape, a, b, accumulator))
                a_types, _, c_types = mma_fragment_types(shape, a, accumulator)
                b_types = mma_fragment_types(shape, b, accumulator)[1]
                registers = [tuple(kernel.operand(t) for t in types) for types in (a_types, b_types, c_types)]
                outputs = tuple(Var("d", t) for t in c_types)
                kernel.body.append(
                    Mma(outputs=outputs, shape=shape, a=registers[0], b=registers[1], c=registers[2])
                )
                for output in outputs:
                    kernel.store(output)
                feature = "float8_mma" if a in FLOAT8 or b in FLOAT8 else None
                yield kernel.program(feature)


def _register_instruction_forms() -> Iterator[Form]:
    for mode, register in itertools.product(SHUFFLE_MODES, (ScalarType(int32), ScalarType(float32), *PACKED)):
        kernel = _Kernel(_name("shuffle", mode, register))
        output = Var("shuffled", register)
        kernel.body.append(
            Shuffle(
                output=output,
                mode=mode,
                value=kernel.operand(register),
                lane=kernel.operand(ScalarType(int32)),
                width=16,
            )
        )
        kernel.store(output)
        yield kernel.program()
    word = ScalarType(uint32)
    kernel = _Kernel("lop3")
    output = Var("lop", word)
    kernel.body.append(
        Lop3(
            output=output, a=kernel.operand(word), b=kernel.operand(word), c=kernel.operand(word), table=0xE8
        )
    )
    kernel.store(output)
    yield kernel.program()
    for mode in PRMT_MODES:
        kernel = _Kernel(_name("prmt", mode))
        output = Var("permuted", word)
        operands = [kernel.operand(word) for _ in range(3)]
        kernel.body.append(Prmt(output=output, a=operands[0], b=operands[1], selector=operands[2], mode=mode))
        kernel.store(output)
        yield kernel.program()
    for target, roundings in PACKED_CONVERSIONS.items():
        for rounding in roundings:
            kernel = _Kernel(_name("cvt_pack", target, rounding))
            output = Var("packed", VectorType(target, 2))
            high, low = (kernel.operand(ScalarType(float32)) for _ in range(2))
            kernel.body.append(
                ConvertPack(output=output, high=high, low=low, dtype=target, rounding=rounding)
            )
            kernel.store(output)
            yield kernel.program("float8_convert" if target in FLOAT8 else None)
    for source in UNPACKED_CONVERSIONS:
        kernel = _Kernel(_name("cvt_unpack", source))
        output = Var("unpacked", VectorType(float16, 2))
        kernel.body.append(ConvertUnpack(output=output, value=kernel.operand(VectorType(source, 2))))
        kernel.store(output)
        yield kernel.program("float8_convert")


def _warpgroup_forms() -> Iterator[Form]:
    """wgmma of every n and dtype, between its fence, commit and wait (whose outputs are stored), with A in
    shared memory and in registers (which the wait holds); a wait holding registers of each width; the async
    proxy fence, beside the shared address it orders accesses to."""
    # every n on float16; bfloat16 changes only the instruction's type suffix: its smallest, an odd and the
    # largest n; A in registers changes only A's operand: the smallest, an odd and the largest n
    shapes = [(float16, n, False) for n in range(8, 257, 8)] + [(bfloat16, n, False) for n in (8, 136, 256)]
    shapes += [(operand, n, True) for operand in (float16, bfloat16) for n in (8, 136, 256)]
    for operand, n, a_in_registers in shapes:
        kernel = _Kernel(_name("wgmma_a_in_registers" if a_in_registers else "wgmma", n, operand))
        registers = range(A_REGISTERS if a_in_registers else 0)
        fragment = tuple(kernel.operand(VectorType(operand, 2)) for _ in registers)
        a = fragment if a_in_registers else kernel.operand(ScalarType(uint64))
        b = kernel.operand(ScalarType(uint64))
        accumulators = tuple(kernel.operand(ScalarType(float32)) for _ in range(n // 2))
        outputs = tuple(Var("d", ScalarType(float32)) for _ in range(n // 2))
        waited = tuple(Var("e", ScalarType(float32)) for _ in range(n // 2))
        kernel.body += [
            WgmmaFence(),
            Wgmma(outputs=outputs, n=n, dtype=operand, a=a, b=b, c=accumulators),
            WgmmaCommitGroup(),
            WgmmaWaitGroup(pending=1),
            WgmmaWaitGroup(outputs=waited, pending=0, accumulators=outputs, held=fragment),
        ]
        for value in waited:
            kernel.store(value)
        yield kernel.program("wgmma")
    kernel = _Kernel("wgmma_wait_one_accumulator")
    waited = Var("e", ScalarType(float32))
    accumulator = kernel.operand(ScalarType(float32))
    kernel.body.append(WgmmaWaitGroup(outputs=(waited,), pending=0, accumulators=(accumulator,)))
    kernel.store(waited)
    yield kernel.program("wgmma")
    kernel = _Kernel("wgmma_wait_holding_each_width")
    widths = (ScalarType(float16), VectorType(bfloat16, 2), ScalarType(float32), VectorType(float32, 2))
    kernel.body.append(WgmmaWaitGroup(pending=0, held=tuple(kernel.operand(width) for width in widths)))
    yield kernel.program("wgmma")
    kernel = _Kernel("fence_proxy_async")
    kernel.body += [
        Store(pointer=_shared(float32), value=kernel.operand(ScalarType(float32))),
        FenceProxyAsync(),
    ]
    kernel.store(SharedAddress(_shared(float32)))
    yield kernel.program("async_proxy_fence")


# -- memory instructions -------------------------------------------------------------------------------------

#: a register of each access width; the 4-byte one is sub-byte elements (bitcast, never loaded as such)
_ACCESSES = (
    ScalarType(uint8),
    ScalarType(dtype("float16")),
    VectorType(dtype("int4"), 8),
    VectorType(dtype("bfloat16"), 4),
    VectorType(dtype("float16"), 8),
)


def _memory_forms() -> Iterator[Form]:
    for register in _ACCESSES:
        kernel = _Kernel(_name("load_store", register))
        width = _bytes(register)
        source = kernel.pointer(register.dtype)
        flag = kernel.operand(ScalarType(boolean))
        loaded, shared_loaded = Var("loaded", register), Var("shared_loaded", register)
        shared = _shared(register.dtype)
        kernel.body += [
            Load(output=loaded, pointer=PointerAdd(source, Const(width, int32)), width=width),
            Store(pointer=shared, value=loaded, predicate=flag),
            Load(output=shared_loaded, pointer=shared, width=width, predicate=flag),
        ]
        kernel.body.append(
            Store(pointer=kernel.pointer(register.dtype, "out"), value=shared_loaded, predicate=flag)
        )
        yield kernel.program()
    fills = ("full", "zero_fill", "whole_or_none")  # src-size a constant, a register, or ignore-src
    for size, cache, fill in itertools.product(COPY_ASYNC_BYTES, ("all", "global"), fills):
        if cache == "global" and size != 16:
            continue
        kernel = _Kernel(_name("cp_async", size, cache, fill))
        source = kernel.pointer(uint8)
        source_size = _source_size(kernel, size, fill)
        kernel.body += [
            CopyAsyncGroup(
                destination=_shared(uint8), source=source, size=size, source_size=source_size, cache=cache
            ),
            CopyAsyncCommitGroup(),
            CopyAsyncWaitGroup(pending=1),
            CopyAsyncWaitGroup(pending=0),
            Barrier(),
            Barrier(barrier_id=15),
            Fence(),
        ]
        yield kernel.program()
    for count, transpose, element in itertools.product(
        LDMATRIX_COUNTS, (False, True), ("float16", "bfloat16", "uint16")
    ):
        kernel = _Kernel(_name("ldmatrix", count, "trans" if transpose else "", element))
        outputs = tuple(Var("fragment", VectorType(dtype(element), 2)) for _ in range(count))
        kernel.body.append(
            Ldmatrix(outputs=outputs, pointer=_shared(dtype(element)), count=count, transpose=transpose)
        )
        for output in outputs:
            kernel.store(output)
        yield kernel.program()
    yield from _atomic_forms()
    kernel = _Kernel("trap")
    kernel.body.append(
        Trap(condition=kernel.operand(ScalarType(boolean)), message="the index is outside the tensor")
    )
    yield kernel.program()


def _atomic_forms() -> Iterator[Form]:
    for element in MACHINE_DTYPES:
        if element.nbits not in (16, 32, 64):
            continue
        for space in AddressSpace:
            kernel = _Kernel(_name("atomic", element, space.value))
            pointer = kernel.pointer(element) if space is AddressSpace.GLOBAL else _shared(element)
            flag = kernel.operand(ScalarType(boolean))
            value = kernel.operand(ScalarType(element))
            for op in ATOMIC_OPS:
                if op != "exchange" and scalar_operator_error(op, element):
                    continue
                for predicate in (None, flag):
                    old = Var("old", ScalarType(element))
                    kernel.body.append(
                        Atomic(output=old, op=op, pointer=pointer, value=value, predicate=predicate)
                    )
                    kernel.store(old)
            yield kernel.program()


# -- control flow --------------------------------------------------------------------------------------------


def _control_forms() -> Iterator[Form]:
    for counter, unroll in itertools.product((int32, dtype("int64"), uint32), (None, 4)):
        kernel = _Kernel(_name("for", counter, unroll))
        bounds = [kernel.scalar(counter) for _ in range(3)]
        total = Var("total", ScalarType(counter))
        index = Var("index", ScalarType(counter))
        remaining = Var("remaining", ScalarType(counter))
        down = Var("down", ScalarType(counter))
        step_down = Const(-2 if counter.is_signed else 2, counter)
        one = Const(1, counter)
        even = BinaryExpr("eq", BinaryExpr("and", remaining, one), Const(0, counter))
        kernel.body += [
            DeclareScalar(output=total, init=Const(0, counter)),
            For(
                variable=index, start=bounds[0], stop=bounds[1], step=bounds[2], unroll=unroll,
                body=(AssignScalar(variable=total, value=BinaryExpr("add", total, index)),),
            ),
            For(
                variable=down, start=bounds[1], stop=bounds[0], step=step_down,
                body=(AssignScalar(variable=total, value=BinaryExpr("xor", total, down)),),
            ),
            DeclareScalar(output=remaining, init=bounds[1]),
            While(condition=BinaryExpr("gt", remaining, bounds[0]), body=(
                If(
                    condition=even,
                    then_body=(AssignScalar(variable=total, value=BinaryExpr("add", total, remaining)),),
                    else_body=(AssignScalar(variable=total, value=BinaryExpr("sub", total, one)),),
                ),
                AssignScalar(variable=remaining, value=BinaryExpr("sub", remaining, one)),
            )),
        ]  # fmt: skip
        kernel.store(total)
        yield kernel.program()


# -- expressions ---------------------------------------------------------------------------------------------


def _expression_forms() -> Iterator[Form]:
    """Arithmetic and casts on the machine dtypes, one kernel per operand type (all the ops, or all the
    casts, in it: none needs a feature, and LLVM's fixed cost per module dominates a tiny kernel's), and
    the other expressions."""
    for register in (*(ScalarType(element) for element in MACHINE_DTYPES), *PACKED):
        ops = [op for op in (*UNARY_OPS, *BINARY_OPS) if not scalar_operator_error(op, register.dtype)]
        yield _computed(
            _name("arithmetic", register), [register, register], [partial(_operator, op) for op in ops]
        )
    # casts between machine dtypes (lowering turns every other cast into bit operations and these)
    for source in MACHINE_DTYPES:
        casts = [partial(_cast, target, rounding) for target in MACHINE_DTYPES for rounding in ROUNDING_MODES]
        yield _computed(_name("casts_from", source), [ScalarType(source)], casts)
    yield _computed("select", [ScalarType(boolean), *PACKED[:1] * 2], [lambda x: Select(x[0], x[1], x[2])])
    yield _computed(
        "gather_element_pack_bitcast", [VectorType(uint8, 4), ScalarType(uint8)],
        [lambda x: Bitcast(uint32, 1, Pack((Gather((x[0], x[1]), (4,)), Element(x[0], 3), x[1], x[1])))],
    )  # fmt: skip
    yield _computed("bitcast_odd_lengths", [VectorType(uint32, 4)], [_odd_lengths])
    yield _computed(
        "indices", [],
        [lambda x: BinaryExpr("add", BinaryExpr("add", ThreadIndex(), LaneIndex()), BinaryExpr(
            "add", WarpIndex(), BinaryExpr("add", BlockIndex(1), GridSize(2))))],
    )  # fmt: skip
    kernel = _Kernel("pointer_cast")
    words = PointerCast(uint32, PointerAdd(kernel.pointer(uint8), Const(4, int32)))
    loaded = Var("word", ScalarType(uint32))
    kernel.body.append(Load(output=loaded, pointer=words, width=4))
    kernel.store(loaded)
    yield kernel.program()


def _odd_lengths(operands: list[Var]) -> Expr:
    """Lengths that do not divide each other: 3 words as 16 six-bit codes and back."""
    codes = Bitcast(dtype("int6"), 16, Gather((operands[0],), (0, 1, 2)))
    return Gather((Bitcast(uint32, 3, codes),), (0, 1, 2, 0))


def _operator(op: str, operands: list[Var]) -> Expr:
    return UnaryExpr(op, operands[0]) if op in UNARY_OPS else BinaryExpr(op, operands[0], operands[1])


def _cast(target: DType, rounding: str, operands: list[Var]) -> Expr:
    return CastExpr(operands[0], target, rounding)


def _computed(
    name: str,
    operands: list[RegisterType],
    computes: list[Callable[[list[Var]], Expr]],
    feature: str | None = None,
) -> Form:
    """A kernel storing each of ``computes`` applied to operands loaded as ``operands``."""
    kernel = _Kernel(name)
    values = [kernel.operand(register) for register in operands]
    for compute in computes:
        kernel.store(kernel.let(compute(values)))
    return kernel.program(feature)


def all_forms() -> list[Form]:
    """Every form, in a fixed order (names are unique: they are the kernels' names)."""
    return [
        *_mma_forms(),
        *_register_instruction_forms(),
        *_warpgroup_forms(),
        *_memory_forms(),
        *_control_forms(),
        *_expression_forms(),
    ]


def _source_size(kernel: _Kernel, size: int, fill: str) -> Expr:
    """A cp.async's src-size: all ``size`` bytes, a register's count, or all or none by a condition."""
    if fill == "full":
        return Const(size, int32)
    if fill == "zero_fill":
        return kernel.scalar(int32)
    read = BinaryExpr("lt", kernel.scalar(int32), Const(7, int32))
    return Select(read, Const(size, int32), Const(0, int32))
