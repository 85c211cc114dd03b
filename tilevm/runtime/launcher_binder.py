"""The per-kernel binder: a Python function generated (once per kernel, with ``exec``) from the kernel's
signature, that takes a launch's arguments as the kernel does (same parameters, same defaults) and, in one
pass over them, computes the specialization key and the launch values.

The key says everything ``describe_arguments`` would: for a tensor its CUDA device index, torch dtype, rank,
the address modulo 16, and per dimension whether its size is a multiple of 16, whether its stride is 1 and a
multiple of 16 (for sub-byte views, sizes and strides modulo 16, from which ``divisibility`` follows); for an
int scalar whether it is a multiple of 16; a constexpr by ``constexpr_key`` and its type. So launches with
equal keys have equal descriptions, and a launch whose tensors lost an alignment, a unit stride or a dtype
has another key: it never reuses a program compiled for what no longer holds. The key may be finer than the
description (an address ``% 16`` of 4 and one of 8 are both "unaligned"); finer only costs one more slow
binding the first time.

The values (``full``) are every tensor's address, sizes and strides and every scalar, in parameter order;
each specialization keeps those its IR takes (``Layout.select``), since a unit stride is compiled in.

The binder returns None for anything unusual (a ``tv.view`` argument, a numpy scalar, a bad type, a size
past int32, a tensor that must be reinterpreted but cannot be): the launcher then takes the slow path
(``bind_arguments`` -> ``describe_arguments``), which binds it or says what is wrong, in its own words.

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
>>> bind(tv.view(x, tv.float32), x, 3) is None  # a view: unusual, bound by the slow path
True
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
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
from tilevm.runtime.binding import INT32_LIMIT, TORCH_DTYPES, reinterprets

__all__ = ["Binder", "Layout", "make_binder"]

#: what a binder returns: (key, full values, the arguments in parameter order), or None (slow path)
Binder = Callable[..., tuple[tuple, tuple, tuple] | None]

#: the binder's answer for an argument it leaves to the slow path
UNUSUAL = object()
#: the mode of a tensor read as its own dtype (no reinterpretation): the common case, unrolled
PLAIN = object()
#: ranks whose plain tensors get unrolled code in the binder; others go through ``tensor_facts``
UNROLLED_RANKS = (1, 2, 3)
VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
#: the generated code's own names (its locals and globals) start so
PREFIX = "_tv"


@dataclass(frozen=True)
class Reinterpreted:
    """The mode of a tensor whose integer container is read as a narrower dtype (uint8 bytes as int4)."""

    dtype: DType
    container_bits: int


def make_binder(signature: inspect.Signature) -> Binder | None:
    """The binder of a kernel with this signature (see the module docstring); None for a signature it
    cannot mirror (``*args``, a parameter named like the generated code's own names), whose launches all
    take the slow path."""
    parameters = list(signature.parameters.values())
    if any(parameter.kind in VARIADIC for parameter in parameters):
        return None
    if any(parameter.name.startswith(PREFIX) for parameter in parameters):
        return None  # the generated code's own names start so: they must not shadow a parameter
    namespace: dict[str, object] = {
        "_tvTensor": torch.Tensor, "_tvUNUSUAL": UNUSUAL, "_tvPLAIN": PLAIN, "_tvLIMIT": INT32_LIMIT,
        "_tvfacts": tensor_facts, "_tvas_float": as_float, "_tvconstexpr_key": fast_constexpr_key,
    }  # fmt: skip
    lines, keys, full, names = [], [], [], []
    for index, parameter in enumerate(parameters):
        name = parameter.name
        names.append(name)
        if parameter.default is not inspect.Parameter.empty:
            namespace[f"_tvdefault{index}"] = parameter.default
        annotation = parameter.annotation
        if annotation is constexpr:
            lines += _constexpr_lines(name, index)
            keys += [f"type({name})", f"{PREFIX}{index}_key"]
        elif isinstance(annotation, TensorAnnotation):
            namespace[f"_tvmodes{index}"] = tensor_modes(annotation)
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
            f"def bind({_parameter_list(parameters, names)}):",
            *(f"    {line}" for line in lines),
            f"    return ({_tuple(keys)}), ({_tuple(full)}), ({_tuple(names)})",
        ]
    )
    exec(compile(source, f"<tilevm binder of {signature}>", "exec"), namespace)
    return namespace["bind"]


def _tuple(items: list[str]) -> str:
    return ", ".join(items) + ("," if len(items) == 1 else "")


def _parameter_list(parameters: list[inspect.Parameter], names: list[str]) -> str:
    """The generated function's parameters: the kernel's, renamed, of the same kinds, with its defaults."""
    text, positional_only_done, keyword_only_started = [], False, False
    for index, (parameter, name) in enumerate(zip(parameters, names)):
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not keyword_only_started:
            text.append("*")
            keyword_only_started = True
        if parameter.kind is not inspect.Parameter.POSITIONAL_ONLY and not positional_only_done:
            if index and parameters[index - 1].kind is inspect.Parameter.POSITIONAL_ONLY:
                text.append("/")
            positional_only_done = True
        has_default = parameter.default is not inspect.Parameter.empty
        text.append(f"{name}=_tvdefault{index}" if has_default else name)
    if parameters and parameters[-1].kind is inspect.Parameter.POSITIONAL_ONLY:
        text.append("/")
    return ", ".join(text)


def _constexpr_lines(name: str, index: int) -> list[str]:
    key = f"{PREFIX}{index}_key"
    return [
        f"if type({name}) is int:",  # the common constexpr, keyed by its value (its type is in the key too)
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
    lines = [
        f"if not isinstance({name}, _tvTensor):",
        "    return None",
        f"{local}_dtype = {name}.dtype",
        f"{local}_mode = _tvmodes{index}.get({local}_dtype)",
        f"if {local}_mode is None:",
        "    return None",
        f"{local}_shape = {name}.shape",
        f"{local}_strides = {name}.stride()",
        f"{local}_pointer = {name}.data_ptr()",
    ]
    ranks = UNROLLED_RANKS if rank is None else (rank,) if rank in UNROLLED_RANKS else ()
    for number, unrolled in enumerate(ranks):
        keyword = "if" if number == 0 else "elif"
        lines.append(f"{keyword} {local}_mode is _tvPLAIN and len({local}_shape) == {unrolled}:")
        lines += [f"    {line}" for line in _unrolled_lines(local, unrolled)]
    generic = [
        f"{local}_facts = _tvfacts({name}, {local}_mode, {rank})",
        f"if {local}_facts is None:",
        "    return None",
        f"{local}_key, {local}_full = {local}_facts",
    ]
    if ranks:
        return [*lines, "else:", *(f"    {line}" for line in generic)]
    return lines + generic


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
    if sub_byte:
        key = (
            tuple([size & 15 for size in shape]),
            tuple([(stride == 1, stride & 15) for stride in strides]),
        )
    else:
        key = (
            tuple([size & 15 == 0 for size in shape]),
            tuple([(stride == 1, stride & 15 == 0) for stride in strides]),
        )
    return key, (tensor.data_ptr(), *shape, *strides)


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
    a value it refuses (so that the slow path words the error)."""
    if type(value).__module__ == "numpy":
        return UNUSUAL
    try:
        return constexpr_key(value, name)
    except LaunchError:
        return UNUSUAL


@dataclass(frozen=True)
class Layout:
    """Where each IR parameter of a specialization is in a binder's values: ``select`` picks them (a
    unit stride is compiled in, not passed), ``tensor_positions`` gives, for each pointer, the parameter
    whose tensor it is (the CPU executors read tensors, not addresses)."""

    select: tuple[int, ...]
    pointers: tuple[tuple[int, int], ...]  # (index in ``select``, index of the Python parameter)

    @classmethod
    def of(cls, described: tuple[Parameter, ...], flat: list[FlatParameter], order: list[str]) -> Layout:
        """The layout of ``flat`` (a specialization's IR parameters) among the values a binder gives for
        arguments ``described`` so (every tensor: pointer, sizes, strides; every scalar: its value)."""
        position, slots = {}, 0
        for parameter in described:
            if isinstance(parameter, TensorParameter):
                position[(parameter.name, "pointer", None)] = slots
                for dim in range(parameter.rank):
                    position[(parameter.name, "size", dim)] = slots + 1 + dim
                    position[(parameter.name, "stride", dim)] = slots + 1 + parameter.rank + dim
                slots += 1 + 2 * parameter.rank
            elif isinstance(parameter, ScalarParameter):
                position[(parameter.name, "scalar", None)] = slots
                slots += 1
        select = tuple(position[(item.owner, item.kind, item.dim)] for item in flat)
        pointers = tuple(
            (index, order.index(item.owner)) for index, item in enumerate(flat) if item.kind == "pointer"
        )
        return cls(select, pointers)

    def __post_init__(self) -> None:
        pick = operator.itemgetter(*self.select) if len(self.select) > 1 else None
        object.__setattr__(self, "_pick", pick)  # a frozen dataclass caches the picker so

    def values(self, full: tuple) -> tuple:
        """The IR parameters' values among ``full`` (tensors as their addresses)."""
        if self._pick is not None:
            return self._pick(full)
        return tuple(full[index] for index in self.select)  # itemgetter of one index gives no tuple
