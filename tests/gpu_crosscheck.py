"""Every launch of the CPU test suite, run again on the GPU and compared byte for byte.

With ``TILEVM_CROSSCHECK=<report.jsonl>`` set on a machine with a CUDA device, each kernel launch on CPU
tensors runs first as usual (SIMT interpreter) and then on CUDA copies of the same tensors (the whole storage
of each, at the same offset, so that alignment and strides are the same and a write outside the view shows
up). Then every tensor's storage is compared byte for byte. The outcome of each launch is one JSON line in
the report: ``same``, ``close`` (float bytes that differ within float32 rounding of the result: a different
order of summation or an approximate instruction), ``differ`` or ``error``; the test itself is not failed,
so one run gives the whole picture. ``benchmarks/crosscheck_report.py`` summarises the report.
"""

from __future__ import annotations

import json
import os

import torch

from tilevm.runtime.binding import TensorArgument

__all__ = ["CROSSCHECK_VARIABLE", "crosschecked_launch"]

CROSSCHECK_VARIABLE = "TILEVM_CROSSCHECK"


def _bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The whole storage under ``tensor``, as a flat uint8 tensor on the same device."""
    return torch.empty(0, dtype=torch.uint8, device=tensor.device).set_(tensor.untyped_storage())


def _to_cuda(tensor: torch.Tensor) -> torch.Tensor:
    device_storage = _bytes(tensor).cuda()
    view = torch.empty(0, dtype=tensor.dtype, device="cuda")
    view.set_(device_storage.untyped_storage(), tensor.storage_offset(), tensor.shape, tensor.stride())
    return view


def _mirror(value: object) -> object:
    if isinstance(value, torch.Tensor) and value.device.type == "cpu":
        return _to_cuda(value)
    if isinstance(value, TensorArgument) and value.tensor.device.type == "cpu":
        return TensorArgument(_to_cuda(value.tensor), value.dtype, value.shape, value.strides)
    return value


def _tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, TensorArgument):
        return value.tensor
    return value if isinstance(value, torch.Tensor) else None


def _compare(cpu: torch.Tensor, gpu: torch.Tensor) -> str:
    expected, actual = _bytes(cpu), _bytes(gpu).cpu()
    if torch.equal(expected, actual):
        return "same"
    if (
        cpu.dtype in (torch.float16, torch.bfloat16, torch.float32)
        and cpu.untyped_storage().nbytes() % cpu.element_size() == 0
    ):
        lhs = expected.view(cpu.dtype).double()
        rhs = actual.view(cpu.dtype).double()
        both_nan = lhs.isnan() & rhs.isnan()
        close = (
            torch.isclose(lhs, rhs, rtol=1e-3 if cpu.dtype != torch.float32 else 1e-5, atol=1e-5) | both_nan
        )
        if bool(close.all()):
            return "close"
    return "differ"


def crosschecked_launch(original, report_path: str, test_name: str):
    """``Kernel.launch`` that, after the CPU launch, runs the same launch on CUDA copies and reports."""

    def launch(kernel, grid, *args, **kwargs):
        if not any(
            _tensor(value) is not None and _tensor(value).device.type == "cpu"
            for value in (*args, *kwargs.values())
        ):
            return original(kernel, grid, *args, **kwargs)
        gpu_args = [_mirror(value) for value in args]
        gpu_kwargs = {name: _mirror(value) for name, value in kwargs.items()}
        original(kernel, grid, *args, **kwargs)
        record = {"test": test_name, "kernel": kernel.function.__name__}
        try:
            original(kernel, grid, *gpu_args, **gpu_kwargs)
            torch.cuda.synchronize()
        except Exception as error:  # every failure is the report's business
            record.update(outcome="error", error=f"{type(error).__name__}: {str(error)[:400]}")
        else:
            outcomes = [
                _compare(_tensor(cpu), _tensor(gpu))
                for cpu, gpu in zip((*args, *kwargs.values()), (*gpu_args, *gpu_kwargs.values()))
                if _tensor(cpu) is not None
            ]
            order = ("differ", "close", "same")
            record["outcome"] = next(o for o in order if o in outcomes) if outcomes else "same"
        line = json.dumps(record) + "\n"
        descriptor = os.open(report_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)

    return launch
