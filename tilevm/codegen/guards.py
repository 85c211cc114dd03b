"""Checks that keep LLVM's silent failures from reaching the GPU.

LLVM accepts a call of a misspelled or non-existent intrinsic as a call of an external function, and the
PTX then declares ``.extern .func llvm....``, which only ptxas or the driver refuses, far from the cause.
Real intrinsics always carry attributes once parsed (``nounwind`` at least), an unknown ``llvm.*`` name
none: ``check_declarations`` refuses the latter, and any declaration that is not an intrinsic (kernels call
no functions). ``check_ptx`` refuses PTX that declares an external function, or whose ``.version`` or
``.target`` is not the one asked for (LLVM falls back to defaults on a feature string it ignores).
"""

from __future__ import annotations

import re

from tilevm.codegen.targets import CodegenError, Target

__all__ = ["check_declarations", "check_ptx"]

_EXTERN_FUNCTION = re.compile(r"^\s*\.extern\s+\.func\b.*?(\w[\w.$]*)\s*\(", re.MULTILINE)
_VERSION = re.compile(r"^\.version\s+(\d+)\.(\d+)\s*$", re.MULTILINE)
_TARGET = re.compile(r"^\.target\s+(\w+)", re.MULTILINE)


def check_declarations(declarations: list[tuple[str, bool]], kernel: str) -> None:
    """Every function the module declares (each name with whether LLVM gave it attributes once parsed) is a
    real LLVM intrinsic."""
    for name, has_attributes in declarations:
        if not name.startswith("llvm."):
            raise CodegenError(f"kernel '{kernel}' calls '{name}', which is not an LLVM intrinsic")
        if not has_attributes:
            raise CodegenError(
                f"kernel '{kernel}' calls '{name}', which LLVM does not know as an intrinsic "
                "(a misspelled name would become a call of an external function)"
            )


def check_ptx(ptx: str, target: Target, kernel: str) -> None:
    """The PTX declares no external function and has the target's ``.version`` and ``.target``."""
    extern = _EXTERN_FUNCTION.search(ptx)
    if extern:
        raise CodegenError(f"kernel '{kernel}': the PTX calls the external function '{extern.group(1)}'")
    version = _VERSION.search(ptx)
    found = (int(version.group(1)) * 10 + int(version.group(2))) if version else None
    if found != target.ptx_version:
        raise CodegenError(
            f"kernel '{kernel}': the PTX has .version {version and version.group(0)!s}, "
            f"not {target.ptx_version // 10}.{target.ptx_version % 10} as {target.name} asked"
        )
    chip = _TARGET.search(ptx)
    if chip is None or chip.group(1) != target.name:
        raise CodegenError(
            f"kernel '{kernel}': the PTX's .target is {chip and chip.group(1)}, not {target.name}"
        )
