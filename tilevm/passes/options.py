"""``CompileOptions``: everything that configures a compilation, read once and passed down.

Passes never read the environment or module globals; the launcher builds one ``CompileOptions`` (from the
environment, with ``from_environment``) and hands it to ``run_pipeline``.

>>> options = CompileOptions.from_environment({"TILEVM_DUMP_IR": "/tmp/ir", "TILEVM_DISABLE_PASSES": ""})
>>> options.dump_directory, options.disabled_passes, options.verify_passes
(PosixPath('/tmp/ir'), frozenset(), False)
>>> CompileOptions.from_environment({"TILEVM_VERIFY": "1"}).verify_passes
True
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DISABLE_PASSES_VARIABLE",
    "DUMP_IR_VARIABLE",
    "FLOAT8_TARGETS",
    "TARGETS",
    "VERIFY_VARIABLE",
    "WGMMA_TARGETS",
    "CompileOptions",
]

#: a directory: the program is written there after every pass (``00-frontend.tir``, ``01-fold_constants.tir``)
DUMP_IR_VARIABLE = "TILEVM_DUMP_IR"
#: pass names separated by commas, skipped by the pipeline (to find which pass changes a result)
DISABLE_PASSES_VARIABLE = "TILEVM_DISABLE_PASSES"
#: ``1``: verify the program after every pass, not only the front end's (for debugging a pass; the tests do)
VERIFY_VARIABLE = "TILEVM_VERIFY"
#: the machines a program is compiled for: the CPU (reference executor), NVIDIA GPUs by compute capability
TARGETS = ("cpu", "sm_80", "sm_86", "sm_89", "sm_90", "sm_90a")
#: the targets with float8 instructions (tensor cores and ``cvt`` to e4m3x2/e5m2x2: sm_89 and later); a
#: program with no target yet (None) may use them, as the CPU can
FLOAT8_TARGETS = (None, "cpu", "sm_89", "sm_90", "sm_90a")
#: the targets with the tensor cores' warpgroup instruction (``wgmma``: sm_90a alone); as for float8, a
#: program with no target yet may use it, as the CPU can
WGMMA_TARGETS = (None, "cpu", "sm_90a")


@dataclass(frozen=True)
class CompileOptions:
    """How to compile: for which ``target``, which passes to skip, where to dump the IR after every pass,
    and whether to verify the program after every pass (``verify_passes``; the front end's program is always
    verified). Verifying is off unless asked for (``TILEVM_VERIFY=1``, which the tests set): every pass
    keeps the rules, as the tests check, and verifying every stage again at every compile would cost a
    fifth of it."""

    target: str = "cpu"
    disabled_passes: frozenset[str] = field(default_factory=frozenset)
    dump_directory: pathlib.Path | None = None
    verify_passes: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown target '{self.target}'; expected one of {', '.join(TARGETS)}")

    @classmethod
    def from_environment(
        cls, environment: Mapping[str, str] | None = None, target: str = "cpu"
    ) -> CompileOptions:
        """The options that ``TILEVM_DUMP_IR``, ``TILEVM_DISABLE_PASSES`` and ``TILEVM_VERIFY`` ask for
        (``os.environ`` when ``environment`` is None); unset or empty variables leave the defaults, and
        passes' results are verified when ``TILEVM_VERIFY`` is ``1``."""
        environment = os.environ if environment is None else environment
        dump = environment.get(DUMP_IR_VARIABLE, "")
        disabled = environment.get(DISABLE_PASSES_VARIABLE, "")
        return cls(
            target=target,
            disabled_passes=frozenset(name.strip() for name in disabled.split(",") if name.strip()),
            dump_directory=pathlib.Path(dump) if dump else None,
            verify_passes=environment.get(VERIFY_VARIABLE, "") == "1",
        )
