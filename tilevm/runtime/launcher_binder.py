"""The per-kernel binder: a Python function generated (once per kernel, with ``exec``) from the kernel's
signature, that takes a launch's arguments as the kernel does (same parameters, same defaults) and, in one
pass over them, computes the specialization key and the launch values.

The key says everything ``describe_arguments`` would: for a tensor its CUDA device index, torch dtype, rank,
the address modulo 16, and per dimension whether its size is a multiple of 16, whether its stride is 1 and a
multiple of 16 (for sub-byte views, sizes and strides modulo 16, from which ``divisibility`` follows); for an
int scalar whether it is a multiple of 16; a constexpr by its type and ``constexpr_key``, or by its type and
itself where that says the same (``BY_VALUE``: no call per launch for an int, a bool, a dtype). So launches
with equal keys have equal descriptions, and a launch whose tensors lost an alignment, a unit stride or a
dtype has another key: it never reuses a program compiled for what no longer holds. The key may be finer
than the description (an address ``% 16`` of 4 and one of 8 are both "unaligned"); finer only costs one more
slow binding the first time.

The values (``full``) are every tensor's address, sizes and strides and every scalar, in parameter order;
each specialization keeps those its IR takes (``Layout.select``), since a unit stride is compiled in.

A ``tv.view`` argument is keyed by its tilevm dtype in place of the torch dtype, and passes its tensor on.
The binder returns None for anything unusual (a numpy scalar, a bad type, a size past int32, a tensor that
must be reinterpreted but cannot be, a view of another dtype or rank than the parameter's): the launcher
then takes the slow path (``bind_arguments`` -> ``describe_arguments``), which binds it or says what is
wrong, in its own words.

``make_binder(signature, fixed)`` makes the binder of a kernel some of whose arguments are given once
(``Kernel.partial``): it takes the others only and gives their key, values and arguments only: a launch
binds, hashes and packs the free arguments' parts only. ``fixed_parts`` gives the fixed arguments' values and
arguments, as the full binder would, computed once (a partial kernel keeps its own launches, whose parameter
buffers hold the fixed values: ``tilevm.runtime.jit_partial``).

>>> import inspect, torch, tilevm as tv
>>> def add(x: tv.Tensor, y: tv.Tensor[tv.float32, 1], n: int, BLOCK: tv.constexpr = 64): ...
>>> bind = make_binder(inspect.signature(add, eval_str=True))
>>> x = torch.zeros(48)
>>> key, full, arguments = bind(x, x[1:33], 32)
>>> key[:4], key[4:8]
((-1, torch.float32, 0, (True, True, False)), (-1, torch.float32, 4, (True, True, False)))
>>> key[-3:]  # n is a multiple of 16; BLOCK is the int 64
(True, <class 'int'>, 64)
>>> full == (x.data_ptr(), 48, 1, x.data_ptr() + 4, 32, 1, 32)
True
>>> bind(tv.view(x, tv.int32), x, 3)[0][:2]  # a view: its dtype in the key
(-1, tilevm.int32)
>>> bind(x, tv.view(x, tv.int32), 3) is None  # y reads float32: unusual, the slow path says what is wrong
True
>>> bind_y = make_binder(inspect.signature(add, eval_str=True), {"y": x[:16], "BLOCK": 32})
>>> bind_y(x, 8)[1] == (x.data_ptr(), 48, 1, 8)  # x's and n's values only
True
>>> fixed_parts(inspect.signature(add, eval_str=True), {"y": x[:16]})["y"][0] == (x.data_ptr(), 16, 1)
True
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from tilevm.dtypes import DType
from tilevm.errors import LaunchError
from tilevm.lang.annotations import TensorAnnotation, constexpr
from tilevm.lang.parameters import (
    FlatParameter,
    Parameter,
    ScalarParameter,
    TensorParameter,
    constexpr_key,
    scalar_dtype,
)
from tilevm.runtime.binding import INT32_LIMIT, TORCH_DTYPES, TensorArgument, reinterprets

__all__ = ["Binder", "Layout", "fixed_parts", "make_binder", "value_ranges"]

#: what a binder returns: (key, full values, the arguments in parameter order), or None (slow path)
Binder = Callable[..., tuple[tuple, tuple, tuple] | None]

#: the binder's answer for an argument it leaves to the slow path
UNUSUAL = object()
#: the mode of a tensor read as its own dtype (no reinterpretation): the common case, unrolled
PLAIN = object()
#: ranks whose plain tensors of undeclared rank get unrolled code in the binder; others go through
#: ``tensor_facts``
UNROLLED_RANKS = (2, 1, 3)  # tested in this order: matrices first
#: a tensor parameter that declares its rank (``tv.Tensor[tv.uint8, 5]``) gets unrolled code up to this rank
MAX_UNROLLED_RANK = 8
#: the constexpr types keyed by the value itself: those for which ``constexpr_key(value)`` is ``(type name,
#: value)``, learnt as ``fast_constexpr_key`` meets them (the key holds the type too, so the value alone
#: says as much; an unhashable value of such a type fails the launcher's dict lookup, which then takes the
#: slow path, which says what is wrong)
BY_VALUE: set[type] = {int, bool, str, type(None)}
VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
#: the generated code's own names (its locals and globals) start so
PREFIX = "_tv"
#: the constexpr types (and their subclasses) that ``constexpr_key`` keys otherwise than by ``(type name,
#: value)``
_BY_KEY = (float, complex, tuple)


@dataclass(frozen=True)
class Reinterpreted:
    """The mode of a tensor whose integer container is read as a narrower dtype (uint8 bytes as int4)."""

    dtype: DType
    container_bits: int


def make_binder(signature: inspect.Signature, fixed: Mapping[str, object] | None = None) -> Binder | None:
    """The binder of a kernel with this signature (see the module docstring); None for a signature it
    cannot mirror (``*args``, a parameter named like the generated code's own names), whose launches all
    take the slow path. With ``fixed`` (values by parameter name), the binder of the other parameters: their
    key, values and arguments only (``fixed_parts`` gives the fixed ones'); None also when a parameter is
    positional-only."""
    parameters = list(signature.parameters.values())
    if not _mirrored(parameters, bool(fixed)):
        return None
    if fixed:
        return _binder_of(inspect.Signature([p for p in parameters if p.name not in fixed]))
    namespace: dict[str, object] = {
        "_tvTensor": torch.Tensor, "_tvUNUSUAL": UNUSUAL, "_tvPLAIN": PLAIN, "_tvLIMIT": INT32_LIMIT,
        "_tvfacts": tensor_facts, "_tvas_float": as_float, "_tvconstexpr_key": fast_constexpr_key,
        "_tvBY_VALUE": BY_VALUE, "_tvview_facts": view_facts,
    }  # fmt: skip
    lines, keys, full = [], [], []
    for index, parameter in enumerate(parameters):
        name = parameter.name
        if parameter.default is not inspect.Parameter.empty:
            namespace[f"_tvdefault_{name}"] = parameter.default
        annotation = parameter.annotation
        if annotation is constexpr:
            lines += _constexpr_lines(name, index)
            keys += [f"type({name})", f"{PREFIX}{index}_key"]
        elif isinstance(annotation, TensorAnnotation):
            namespace[f"_tvmodes{index}"] = tensor_modes(annotation)
            namespace[f"_tvannotation{index}"] = annotation
            lines += _tensor_lines(name, index, annotation.rank)
            local = f"{PREFIX}{index}"
            # the device by its CUDA index (-1 off CUDA: a CPU launch checks that its tensors are on the CPU)
            keys += [f"{name}.get_device()", f"{local}_dtype", f"{local}_pointer & 15", f"{local}_key"]
            full.append(f"*{local}_full")
        else:
            dtype = scalar_dtype(annotation)
            lines += _scalar_lines(name, dtype)
            keys += [f"{name} & 15 == 0"] if dtype.is_integer else []
            full.append(name)
    source = "\n".join(
        [
            f"def bind({_parameter_list(parameters)}):",
            *(f"    {line}" for line in lines),
            f"    return ({_tuple(keys)}), ({_tuple(full)}), ({_tuple([p.name for p in parameters])})",
        ]
    )
    exec(compile(source, f"<tilevm binder of {signature}>", "exec"), namespace)
    return namespace["bind"]


def fixed_parts(
    signature: inspect.Signature, fixed: Mapping[str, object]
) -> dict[str, tuple[tuple, object]] | None:
    """The values and the argument that the kernel's binder gives for each fixed argument, by name (None
    when one of them is unusual: its launches then all take the slow path, which says what is wrong)."""
    parts = {}
    for name, value in fixed.items():
        parameter = signature.parameters[name].replace(default=inspect.Parameter.empty)
        alone = _binder_of(inspect.Signature([parameter]))
        bound = alone(**{name: value}) if alone is not None else None
        if bound is None:
            return None
        parts[name] = (bound[1], bound[2][0])
    return parts


def value_ranges(described: Sequence[Parameter]) -> dict[str, range]:
    """Where each argument's values are among the values a binder gives for arguments ``described`` (every
    tensor: pointer, sizes, strides; every scalar: its value; a constexpr: none), by parameter name."""
    ranges, start = {}, 0
    for parameter in described:
        if isinstance(parameter, TensorParameter):
            count = 1 + 2 * parameter.rank
        else:
            count = 1 if isinstance(parameter, ScalarParameter) else 0
        ranges[parameter.name] = range(start, start + count)
        start += count
    return ranges


def _mirrored(parameters: list[inspect.Parameter], partial: bool) -> bool:
    """Whether a binder can mirror these parameters (``partial``: with some fixed)."""
    if any(parameter.kind in VARIADIC for parameter in parameters):
        return False
    if partial and any(parameter.kind is inspect.Parameter.POSITIONAL_ONLY for parameter in parameters):
        return False  # a partial kernel's slow path passes every argument by name
    # the generated code's own names start so: they must not shadow a parameter
    return not any(parameter.name.startswith(PREFIX) for parameter in parameters)


def _binder_of(signature: inspect.Signature) -> Binder | None:
    """``make_binder(signature)``, made once per signature (a partial kernel made again, for other buffers
    say, compiles no binder)."""
    try:
        return _binder_of_hashable(signature)
    except TypeError:  # an unhashable annotation or default
        return make_binder(signature)


@functools.lru_cache(maxsize=1024)
def _binder_of_hashable(signature: inspect.Signature) -> Binder | None:
    return make_binder(signature)


def _tuple(items: list[str]) -> str:
    return ", ".join(items) + ("," if len(items) == 1 else "")


def _parameter_list(parameters: list[inspect.Parameter]) -> str:
    """The generated function's parameters: the kernel's, of the same kinds, with its defaults."""
    text, positional_only_done, keyword_only_started = [], False, False
    for index, parameter in enumerate(parameters):
        name = parameter.name
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not keyword_only_started:
            text.append("*")
            keyword_only_started = True
        if parameter.kind is not inspect.Parameter.POSITIONAL_ONLY and not positional_only_done:
            if index and parameters[index - 1].kind is inspect.Parameter.POSITIONAL_ONLY:
                text.append("/")
            positional_only_done = True
        has_default = parameter.default is not inspect.Parameter.empty
        text.append(f"{name}=_tvdefault_{name}" if has_default else name)
    if parameters and parameters[-1].kind is inspect.Parameter.POSITIONAL_ONLY:
        text.append("/")
    return ", ".join(text)


def _constexpr_lines(name: str, index: int) -> list[str]:
    key = f"{PREFIX}{index}_key"
    return [
        f"if type({name}) in _tvBY_VALUE:",  # keyed by its value (its type is in the key too)
        f"    {key} = {name}",
        "else:",
        f"    {key} = _tvconstexpr_key({name}, {name!r})",
        f"    if {key} is _tvUNUSUAL:",
        "        return None",
    ]


def _scalar_lines(name: str, dtype: DType) -> list[str]:
    if dtype.kind == "bool":
        return [f"if type({name}) is not bool:", "    return None"]
    if dtype.is_float:
        return [
            f"if type({name}) is not float:",
            f"    {name} = _tvas_float({name})",
            f"    if {name} is _tvUNUSUAL:",
            "        return None",
        ]
    return [
        f"if type({name}) is not int or not {dtype.min_value} <= {name} <= {dtype.max_value}:",
        "    return None",
    ]


def _tensor_lines(name: str, index: int, rank: int | None) -> list[str]:
    local = f"{PREFIX}{index}"
    view = [  # a tv.view: keyed by its tilevm dtype; its tensor passed on
        f"{local}_view = _tvview_facts({name}, _tvannotation{index})",
        f"if {local}_view is None:",
        "    return None",
        f"{name}, {local}_dtype, {local}_pointer, {local}_key, {local}_full = {local}_view",
    ]
    lines = [
        f"if not isinstance({name}, _tvTensor):",
        *(f"    {line}" for line in view),
        "else:",
    ]
    plain = [
        f"{local}_dtype = {name}.dtype",
        f"{local}_mode = _tvmodes{index}.get({local}_dtype)",
        f"if {local}_mode is None:",
        "    return None",
        f"{local}_shape = {name}.shape",
        f"{local}_strides = {name}.stride()",
        f"{local}_pointer = {name}.data_ptr()",
    ]
    ranks = UNROLLED_RANKS if rank is None else (rank,) if 0 < rank <= MAX_UNROLLED_RANK else ()
    if ranks:  # the rank of a plain tensor, 0 for one that is reinterpreted (never unrolled)
        plain.append(f"{local}_rank = len({local}_shape) if {local}_mode is _tvPLAIN else 0")
    for number, unrolled in enumerate(ranks):
        keyword = "if" if number == 0 else "elif"
        plain.append(f"{keyword} {local}_rank == {unrolled}:")
        plain += [f"    {line}" for line in _unrolled_lines(local, unrolled)]
    generic = [
        f"{local}_facts = _tvfacts({name}, {local}_mode, {rank})",
        f"if {local}_facts is None:",
        "    return None",
        f"{local}_key, {local}_full = {local}_facts",
    ]
    plain += ["else:", *(f"    {line}" for line in generic)] if ranks else generic
    return lines + [f"    {line}" for line in plain]


def _unrolled_lines(local: str, rank: int) -> list[str]:
    sizes = [f"{local}_s{dim}" for dim in range(rank)]
    strides = [f"{local}_t{dim}" for dim in range(rank)]
    key = [f"{size} & 15 == 0" for size in sizes]
    key += [part for stride in strides for part in (f"{stride} == 1", f"{stride} & 15 == 0")]
    return [
        f"{_tuple(sizes)} = {local}_shape",
        f"{_tuple(strides)} = {local}_strides",
        # sizes and strides are never negative in torch, so one OR tells whether any reaches 2**31
        f"if {' | '.join(sizes + strides)} >= _tvLIMIT:",
        "    return None",
        f"{local}_key = ({_tuple(key)})",
        f"{local}_full = ({_tuple([f'{local}_pointer', *sizes, *strides])})",
    ]


def tensor_modes(annotation: TensorAnnotation) -> dict[torch.dtype, object]:
    """How a tensor parameter reads a tensor of each torch dtype: ``PLAIN``, ``Reinterpreted``, or (absent)
    not at all, which the slow path reports."""
    modes: dict[torch.dtype, object] = {}
    for torch_dtype, dtype in TORCH_DTYPES.items():
        if reinterprets(dtype, annotation.dtype):
            modes[torch_dtype] = Reinterpreted(annotation.dtype, dtype.nbits)
        elif annotation.dtype is None or annotation.dtype == dtype:
            modes[torch_dtype] = PLAIN
    return modes


def tensor_facts(tensor: torch.Tensor, mode: object, rank: int | None) -> tuple[tuple, tuple] | None:
    """A tensor's key and values for the ranks and modes the binder does not unroll (None: unusual).

    A reinterpreted tensor is viewed as ``tilevm.runtime.binding.view`` does: contiguous, its last
    dimension rescaled, row-major strides; of sub-byte elements, its sizes and strides are keyed modulo 16,
    which decides their divisibility by every power of two up to 16.
    """
    shape, strides = tuple(tensor.shape), tuple(tensor.stride())
    sub_byte = False
    if isinstance(mode, Reinterpreted):
        if not shape or not tensor.is_contiguous() or (shape[-1] * mode.container_bits) % mode.dtype.nbits:
            return None
        shape = (*shape[:-1], shape[-1] * mode.container_bits // mode.dtype.nbits)
        strides = _row_major_strides(shape)
        sub_byte = mode.dtype.nbits < 8
    if not shape or (rank is not None and len(shape) != rank):
        return None
    if any(extent >= INT32_LIMIT for extent in (*shape, *strides)):
        return None
    return _shape_key(shape, strides, sub_byte), (tensor.data_ptr(), *shape, *strides)


def view_facts(
    value: object, annotation: TensorAnnotation
) -> tuple[torch.Tensor, DType, int, tuple, tuple] | None:
    """A ``tv.view`` argument's tensor, dtype, address, key and values (None: unusual, for the slow path:
    not a view, or one that the parameter does not take as it is)."""
    if type(value) is not TensorArgument:
        return None
    shape, strides, dtype = value.shape, value.strides, value.dtype
    if (annotation.dtype is not None and dtype != annotation.dtype) or not shape:
        return None
    if (annotation.rank is not None and len(shape) != annotation.rank) or max(
        *shape, *strides
    ) >= INT32_LIMIT:
        return None
    pointer = value.tensor.data_ptr()
    if pointer % max(1, dtype.nbits // 8):
        return None
    return (
        value.tensor,
        dtype,
        pointer,
        _shape_key(shape, strides, dtype.nbits < 8),
        (pointer, *shape, *strides),
    )


def _shape_key(shape: tuple[int, ...], strides: tuple[int, ...], sub_byte: bool) -> tuple:
    """The key of sizes and strides (see the module docstring)."""
    if sub_byte:
        return (
            tuple([size & 15 for size in shape]),
            tuple([(stride == 1, stride & 15) for stride in strides]),
        )
    return (
        tuple([size & 15 == 0 for size in shape]),
        tuple([(stride == 1, stride & 15 == 0) for stride in strides]),
    )


def _row_major_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, running = [], 1
    for extent in reversed(shape):
        strides.append(running)
        running *= extent
    return tuple(strides[::-1])


def as_float(value: object) -> object:
    """An int given for a float parameter, as the slow path converts it; ``UNUSUAL`` for anything else."""
    if type(value) is int and -(2**1023) < value < 2**1023:
        return float(value)
    return UNUSUAL


def fast_constexpr_key(value: object, name: str) -> object:
    """``constexpr_key`` of a Python value; ``UNUSUAL`` for a numpy number (which the slow path converts) or
    a value it refuses (so that the slow path words the error). A type whose values it keys as ``(type
    name, value)`` joins ``BY_VALUE``, so that later launches key its values without calling it."""
    kind = type(value)
    if kind.__module__ == "numpy":
        return UNUSUAL
    try:
        key = constexpr_key(value, name)
    except LaunchError:
        return UNUSUAL
    if not isinstance(value, _BY_KEY):
        BY_VALUE.add(kind)
    return key


@dataclass(frozen=True)
class Layout:
    """Where each IR parameter of a specialization is in a binder's values: ``select`` picks them (a
    unit stride is compiled in, not passed) among the ``width`` values, ``pointers`` gives, for each
    pointer, the parameter whose tensor it is (the CPU executors read tensors, not addresses)."""

    select: tuple[int, ...]
    pointers: tuple[tuple[int, int], ...]  # (index in ``select``, index of the Python parameter)
    width: int

    @classmethod
    def of(cls, described: tuple[Parameter, ...], flat: list[FlatParameter], order: list[str]) -> Layout:
        """The layout of ``flat`` (a specialization's IR parameters) among the values a binder gives for
        arguments ``described`` so (every tensor: pointer, sizes, strides; every scalar: its value)."""
        ranges = value_ranges(described)
        select = tuple(ranges[item.owner].start + _offset(item, ranges[item.owner]) for item in flat)
        pointers = tuple(
            (index, order.index(item.owner)) for index, item in enumerate(flat) if item.kind == "pointer"
        )
        return cls(select, pointers, sum(map(len, ranges.values())))

    def __post_init__(self) -> None:
        pick = operator.itemgetter(*self.select) if len(self.select) > 1 else None
        object.__setattr__(self, "_pick", pick)  # a frozen dataclass caches the picker so

    def values(self, full: tuple) -> tuple:
        """The IR parameters' values among ``full`` (tensors as their addresses)."""
        if self._pick is not None:
            return self._pick(full)
        return tuple(full[index] for index in self.select)  # itemgetter of one index gives no tuple

    def spread(self, values: Sequence[object]) -> list[object]:
        """The ``width`` values whose ``values`` (the IR parameters') are ``values`` (the others 0): what
        ``values`` picks from, for a launcher that takes a binder's values (``CudaLaunch``)."""
        full: list[object] = [0] * self.width
        for index, value in zip(self.select, values):
            full[index] = value
        return full


def _offset(item: FlatParameter, values: range) -> int:
    """Where an IR parameter's value is among its tensor's or its scalar's ``values``."""
    if item.kind == "size":
        return 1 + item.dim
    if item.kind == "stride":
        return 1 + len(values) // 2 + item.dim  # after the pointer and the rank's sizes
    return 0  # the pointer, or the scalar itself
