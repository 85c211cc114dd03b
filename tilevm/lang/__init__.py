"""The DSL: ``@tilevm.kernel`` parses a Python function's AST into Tile IR; the functions here are what a
kernel's body calls. Everything is re-exported at the top level (``import tilevm as tv``). Nothing here
imports torch: launching (``tv.kernel``, ``tv.view`` of a torch tensor) belongs to ``tilevm.runtime``."""

from tilevm.lang.annotations import Tensor, TensorAnnotation, constexpr
from tilevm.lang.compute_builtins import (
    arange,
    block_idx,
    cast,
    cdiv,
    convert_layout,
    dot,
    dot_wait,
    num_blocks,
    permute,
    where,
)
from tilevm.lang.control import static_range
from tilevm.lang.control import tile_range as range
from tilevm.lang.functions import DeviceFunction, func
from tilevm.lang.math_builtins import (
    abs,
    ceil,
    cos,
    exp,
    exp2,
    floor,
    log,
    log2,
    max,
    maximum,
    min,
    minimum,
    round,
    rsqrt,
    sin,
    sqrt,
    sum,
    tanh,
    trunc,
)
from tilevm.lang.memory_builtins import (
    atomic_add,
    atomic_add_scalar,
    atomic_exchange_scalar,
    atomic_max,
    atomic_max_scalar,
    atomic_min,
    atomic_min_scalar,
    copy_async,
    copy_async_commit,
    copy_async_wait,
    free_shared,
    load_global,
    load_scalar,
    load_shared,
    register_tensor,
    shared_tensor,
    slice_shared,
    store_global,
    store_shared,
    sync,
)

__all__ = [
    "DeviceFunction",
    "func",
    "Tensor", "TensorAnnotation", "abs", "arange", "atomic_add", "atomic_max", "atomic_min",
    "block_idx", "cast", "cdiv", "constexpr", "convert_layout", "copy_async", "copy_async_commit",
    "copy_async_wait", "cos", "dot", "dot_wait", "exp", "exp2", "free_shared", "load_global", "load_shared",
    "log", "log2", "max", "maximum", "min", "minimum", "num_blocks", "permute", "range", "register_tensor",
    "rsqrt", "shared_tensor", "sin", "slice_shared", "sqrt", "static_range", "store_global", "store_shared",
    "sum", "sync", "tanh", "where",
    "load_scalar", "floor", "ceil", "round", "trunc",
    "atomic_add_scalar", "atomic_max_scalar", "atomic_min_scalar", "atomic_exchange_scalar",
]  # fmt: skip
