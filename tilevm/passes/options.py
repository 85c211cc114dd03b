"""``CompileOptions``: everything that configures a compilation, read once and passed down.

Passes never read the environment or module globals; the launcher builds one ``CompileOptions`` (from the
environment, with ``from_environment``) and hands it to ``run_pipeline``.

>>> options = CompileOptions.from_environment({"TILEVM_DUMP_IR": "/tmp/ir", "TILEVM_DISABLE_PASSES": ""})
>>> options.dump_directory, options.disabled_passes
(PosixPath('/tmp/ir'), frozenset())
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DISABLE_PASSES_VARIABLE", "DUMP_IR_VARIABLE", "FLOAT8_TARGETS", "TARGETS", "CompileOptions"]

#: a directory: the program is written there after every pass (``00-frontend.tir``, ``01-fold_constants.tir``)
DUMP_IR_VARIABLE = "TILEVM_DUMP_IR"
#: pass names separated by commas, skipped by the pipeline (to find which pass changes a result)
DISABLE_PASSES_VARIABLE = "TILEVM_DISABLE_PASSES"
#: the machines a program is compiled for: the CPU (reference executor), NVIDIA GPUs by compute capability
TARGETS = ("cpu", "sm_80", "sm_86", "sm_89", "sm_90")
#: the targets with float8 instructions (tensor cores and ``cvt`` to e4m3x2/e5m2x2: sm_89 and later); a
#: program with no target yet (None) may use them, as the CPU can
FLOAT8_TARGETS = (None, "cpu", "sm_89", "sm_90")


@dataclass(frozen=True)
class CompileOptions:
    """How to compile: for which ``target``, which passes to skip, where to dump the IR after every pass."""

    target: str = "cpu"
    disabled_passes: frozenset[str] = field(default_factory=frozenset)
    dump_directory: pathlib.Path | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown target '{self.target}'; expected one of {', '.join(TARGETS)}")

    @classmethod
    def from_environment(
        cls, environment: Mapping[str, str] | None = None, target: str = "cpu"
    ) -> CompileOptions:
        """The options that ``TILEVM_DUMP_IR`` and ``TILEVM_DISABLE_PASSES`` ask for (``os.environ`` when
        ``environment`` is None); unset or empty variables leave the defaults."""
        environment = os.environ if environment is None else environment
        dump = environment.get(DUMP_IR_VARIABLE, "")
        disabled = environment.get(DISABLE_PASSES_VARIABLE, "")
        return cls(
            target=target,
            disabled_passes=frozenset(name.strip() for name in disabled.split(",") if name.strip()),
            dump_directory=pathlib.Path(dump) if dump else None,
        )
