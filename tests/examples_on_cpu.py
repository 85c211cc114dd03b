"""Running an example as a user does, on the CPU even on a machine with a GPU: the tests that intercept
the CPU executors see every launch (an example runs on CUDA tensors when torch sees a GPU)."""

from __future__ import annotations

import pathlib
import runpy

import torch

__all__ = ["run_example_on_cpu"]


def run_example_on_cpu(path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runpy.run_path(str(path), run_name="__main__")
