"""The quantized GEMM's launch of one weight under one configuration (``QGemmLaunch``), and the eager host
path of ``quantized_matmul``, which keeps one per weight, M bucket and bias (``cached_launch``).

A ``QGemmLaunch`` holds everything a launch needs but X, the bias, the output and (split-K) the workspace:
the kernel for the configuration's warps and register cap, the weight's tensors as the kernel takes them
(the e8m0 / ue4m3 scales viewed as their dtype, a placeholder for an absent zero point, global scale, bias
or split-K buffers), the constexprs and the plan. Made ``persistent``, it binds all of these once
(``Kernel.partial``), so that a call binds X and the output only (and the bias where it has one; with
split-K on a GPU, the stream's buffers are bound too, in a kernel kept per M: ``_split_partial``). A
persistent launch holds the weight's tensors: it is kept by the weight itself
(``QuantizedWeight.host_cache``), and goes with it; a weight's tensors never change (it is frozen, and its
validity was checked when it was made), so what the launch read from them stays true.

``cached_launch`` keys a weight's launches by the tuner's key less what the weight fixes: M rounded up as the
tuner rounds it (``tuning.m_bucket``) and whether there is a bias; each M seen is a key too, for the same
launch as its bucket's (a call then looks its M up, without rounding it). A launch is kept while the tuner
keeps its choice (``Autotuner.generation``); a choice made while a CUDA graph is captured is the default and
is not kept (the tuner searches at the next call outside the capture). ``kept_launch`` is the look-up alone,
which a call makes first (made no launch, it checks nothing more).
"""

from __future__ import annotations

import torch

import tilevm as tv
from tilevm.ops import tuning
from tilevm.ops.qgemm.config import PrefillConfig, QGemmConfig
from tilevm.ops.qgemm.kernel import decode_kernel, kernel_plan
from tilevm.ops.qgemm.prefill import prefill_kernel, prefill_plan
from tilevm.ops.qgemm.workspace import split_buffers
from tilevm.ops.quantization import QuantizedWeight
from tilevm.ops.tuning import m_bucket
from tilevm.runtime.jit_partial import PartialKernel

__all__ = ["QGemmLaunch", "cached_launch", "kept_launch", "split_workspace"]

_FLOAT_SCALES = (tv.float16, tv.bfloat16)
#: how many split-K kernels (with a stream's buffers bound, one per M) a launch keeps at most
SPLIT_KERNELS = 64
#: the devices whose split-K buffers are kept per stream (``workspace.split_buffers``), so that a launch
#: binds them once (the interpreter's are new at every launch)
STREAM_BUFFER_DEVICES = ("cuda",)


class QGemmLaunch:
    """``out = x @ W.T (+ bias)`` for one weight's tensors under ``config``; ``launch(x, bias, out)``."""

    def __init__(
        self,
        packed: torch.Tensor,
        scales: torch.Tensor,
        zeros: torch.Tensor | None,
        global_scale: torch.Tensor | None,
        has_bias: bool,
        code_dtype: tv.DType,
        scale_dtype: tv.DType,
        shape: tuple[int, int],
        group_size: int,
        config: QGemmConfig | PrefillConfig,
        persistent: bool = False,
    ) -> None:
        n, k = shape
        # what the kernel reads in place of an absent tensor (never read: any tensor does)
        placeholder = scales
        self.fixed: dict[str, object] = {
            "packed": packed,
            "scales": scales if scale_dtype in _FLOAT_SCALES else tv.view(scales, scale_dtype),
            "zeros": zeros if zeros is not None else placeholder,
            "global_scale": global_scale.reshape(1) if global_scale is not None else placeholder,
            "CODE": code_dtype,
            "HAS_ZEROS": zeros is not None,
            "HAS_GLOBAL_SCALE": global_scale is not None,
            "HAS_BIAS": has_bias,
        }
        if not has_bias:
            self.fixed["bias"] = placeholder
        if isinstance(config, PrefillConfig):
            self.kernel = prefill_kernel(config.num_warps, config.max_registers)
            self.fixed["PREFILL"] = prefill_plan(
                code_dtype.nbits,
                config.n_warps,
                config.m_warps,
                config.n_tiles,
                config.m_tiles,
                config.chunks,
                config.steps,
                config.stages,
                group_size,
                k,
                config.split_k,
                config.warpgroups,
                config.running,
                config.raster,
            )
            self.split_k, self.stream_k = config.split_k, False
            self.iterations = -(-packed.shape[1] // (config.steps * config.chunks))  # a tile's iterations
        else:
            self.kernel = decode_kernel(config.num_warps, config.max_registers)
            self.fixed["PREFETCH"] = config.prefetch
            self.fixed["PLAN"] = kernel_plan(
                code_dtype.nbits,
                config.n_warps,
                config.k_warps,
                config.split_k,
                config.n_tiles,
                config.block_m,
                config.chunks,
                group_size,
                k,
                config.stream_k,
            )
            self.split_k, self.stream_k = config.split_k, config.stream_k
            self.iterations = -(-packed.shape[1] // (config.k_warps * config.chunks))  # a tile's iterations
        self.shares_tiles = self.split_k > 1 or self.stream_k  # blocks add partial tiles
        if not self.shares_tiles:
            self.fixed["workspace"] = self.fixed["counters"] = placeholder
        self.config = config
        #: the blocks of a persistent grid (``stream_k``) on this GPU, found at the first launch
        self.resident_blocks = 0
        self.device = packed.device
        self.n = n
        self.columns = -(-n // config.block_n)  # the grid's first axis
        self.block_m = config.block_m
        #: the kernel with the weight bound (persistent launches), taking x, the bias if any, out, and the
        #: workspace and counters with split-K
        self.partial = self.kernel.partial(**self.fixed) if persistent else None
        #: a persistent launch whose blocks share no tile: it binds x, the bias and out only
        self.bound_tiles = self.partial is not None and not self.shares_tiles
        #: a persistent split-K launch on a GPU: the stream's buffers bound too (``_split_partial``)
        self.bound_split = (
            self.partial is not None
            and self.split_k > 1
            and not self.stream_k
            and self.device.type in STREAM_BUFFER_DEVICES
        )
        #: (M, the counters' id) -> the stream's workspace and counters and the kernel with them bound
        self._split_bound: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, PartialKernel]] = {}
        #: the tuner's generation when the configuration was chosen (see ``cached_launch``)
        self.generation = -1
        # the last bias and its [1, N] view, one tuple (read at once by concurrent calls): a persistent
        # launch is called with the same bias again and again
        self._bias_row: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)

    @classmethod
    def of(
        cls, qweight: QuantizedWeight, has_bias: bool, config: QGemmConfig | PrefillConfig, persistent: bool
    ) -> QGemmLaunch:
        """The launch of ``qweight``'s tensors under ``config``."""
        weight_format = qweight.format
        return cls(
            qweight.packed,
            qweight.scales,
            qweight.zeros,
            qweight.global_scale,
            has_bias,
            weight_format.dtype,
            weight_format.scale_dtype,
            qweight.shape,
            weight_format.group_size,
            config,
            persistent,
        )

    def launch(self, x: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor | None) -> torch.Tensor:
        """``out`` (a new ``[M, N]`` tensor when None) ``= x @ W.T (+ bias)``; the arguments are checked
        (``launch.qgemm``, ``quantized_matmul``): ``bias`` is given exactly when the launch was made for
        one."""
        m = x.shape[0]
        if out is None:
            out = torch.empty(m, self.n, dtype=x.dtype, device=self.device)  # sizes as arguments: faster
        grid = (self.columns, -(-m // self.block_m), self.split_k)
        if self.bound_tiles or self.bound_split:  # x, the bias row if any, and out
            partial = self.partial if self.bound_tiles else self._split_partial(m, grid[0] * grid[1])
            if bias is None:
                partial.launch(grid, x, out)
            else:
                partial.launch(grid, x, self._bias_view(bias), out)
            return out
        free: dict[str, torch.Tensor] = {"out": out}
        if bias is not None:
            free["bias"] = self._bias_view(bias)
        if self.stream_k:
            tiles = grid[0] * grid[1]
            blocks = min(tiles * self.iterations, self._resident_blocks(x, free))
            grid = (blocks, 1, 1)
            workspace, free["counters"] = split_workspace(
                self.device, blocks * 2, self.block_m, self.config.block_n, tiles
            )
            free["workspace"] = workspace.view(blocks, 2, self.block_m, self.config.block_n)
        elif self.split_k > 1:
            free["workspace"], free["counters"] = split_workspace(
                self.device, self.split_k, m, self.n, grid[0] * grid[1]
            )
        if self.partial is not None:
            self.partial.launch(grid, x, **free)
        else:
            self.kernel.launch(grid, x, **free, **self.fixed)
        return out

    def _split_partial(self, m: int, tiles: int) -> PartialKernel:
        """The kernel with the weight and the current stream's split-K buffers bound (the workspace viewed
        as ``[split_k, m, N]``), made once per M and pair of buffers: a launch then binds x, the bias and
        out only. The buffers are asked for at every launch (``split_buffers`` zeroes the counters of a
        stream that leaves a graph capture), and a stream's new buffers (larger, or another stream's) get
        their own kernel; the kept ones are dropped all at once past ``SPLIT_KERNELS`` (buffers
        replaced again and again), so that old buffers are not held for long."""
        size = self.split_k * m * self.n
        workspace, counters = split_buffers(self.device, size, tiles)
        key = (m, id(counters))
        bound = self._split_bound.get(key)
        if bound is None or bound[0] is not workspace or bound[1] is not counters:
            if len(self._split_bound) >= SPLIT_KERNELS:
                self._split_bound.clear()
            view = workspace[:size].view(self.split_k, m, self.n)
            partial = self.kernel.partial(**self.fixed, workspace=view, counters=counters)
            bound = self._split_bound[key] = (workspace, counters, partial)
        return bound[2]

    def _bias_view(self, bias: torch.Tensor) -> torch.Tensor:
        """The bias as the kernel reads it, ``[1, N]`` (the last one's view kept: the same bias comes again
        and again)."""
        last, row = self._bias_row
        if last is not bias:
            row = bias.view(1, self.n)
            self._bias_row = (bias, row)
        return row

    def _resident_blocks(self, x: torch.Tensor, free: dict[str, torch.Tensor]) -> int:
        """The blocks of the persistent grid: as many as the GPU runs at once (asked of the driver at the
        first launch, which compiles the kernel), or 7 in the interpreter (a ragged split, whose tiles
        are shared by one to three blocks)."""
        if self.device.type != "cuda":
            return 7
        if not self.resident_blocks:
            workspace, counters = split_workspace(self.device, 2, self.block_m, self.config.block_n, 1)
            workspace = workspace.view(1, 2, self.block_m, self.config.block_n)
            arguments = {**self.fixed, **free, "workspace": workspace, "counters": counters}
            per_multiprocessor = self.kernel.blocks_per_multiprocessor(x, **arguments)
            sms = torch.cuda.get_device_properties(self.device).multi_processor_count
            self.resident_blocks = max(1, per_multiprocessor) * sms
        return self.resident_blocks


def split_workspace(
    device: torch.device, split_k: int, m: int, n: int, tiles: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``[split_k, m, n]`` float32 workspace of the blocks' partial tiles and ``tiles`` zero counters:
    CUDA buffers reused launch after launch (``workspace``), fresh ones for the interpreter. A persistent
    grid's workspace is ``[2 * blocks, block_m, block_n]``, seen by the kernel as ``[blocks, 2, block_m,
    block_n]``."""
    if device.type != "cuda":
        return torch.empty(split_k, m, n, device=device), torch.zeros(tiles, dtype=torch.int32, device=device)
    workspace, counters = split_buffers(device, split_k * m * n, tiles)
    return workspace[: split_k * m * n].view(split_k, m, n), counters


def kept_launch(qweight: QuantizedWeight, m: int, has_bias: bool) -> QGemmLaunch | None:
    """The launch that ``qweight`` keeps for ``m`` rows (and a bias or not) under the tuner's current
    choices, or None (see the module's docstring)."""
    cache = qweight.host_cache
    launch = cache.get((m, has_bias))
    if launch is None:
        launch = cache.get((m_bucket(m), has_bias))
        if launch is None:
            return None
        cache[(m, has_bias)] = launch  # this M's own key: the next call skips the rounding
    return launch if launch.generation == tuning.TUNER.generation else None


def cached_launch(x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None) -> QGemmLaunch:
    """The persistent launch of ``qweight`` for ``x [M, K]`` (and ``bias``) under the tuner's choice, made
    the first time its key is seen and kept by the weight (see the module's docstring)."""
    m = x.shape[0]
    launch = kept_launch(qweight, m, bias is not None)
    if launch is not None:
        return launch
    config = tuning.tuned_config(x, qweight, bias)
    launch = QGemmLaunch.of(qweight, bias is not None, config, persistent=True)
    if not (x.is_cuda and torch.cuda.is_current_stream_capturing()):
        launch.generation = tuning.TUNER.generation
        qweight.host_cache[(m_bucket(m), bias is not None)] = launch
        qweight.host_cache[(m, bias is not None)] = launch
    return launch
