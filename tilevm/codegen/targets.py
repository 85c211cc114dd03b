"""The GPUs tilevm generates code for, and what each one's PTX can express.

A ``Target`` is a compute capability with the PTX ISA version that code for it is emitted in. LLVM aborts the
whole process on an instruction the target cannot select (an abort, not an exception), so code generation asks
``Target.require`` before it emits anything that not every target has, and fails with a ``CodegenError``
instead. ``FEATURES`` is that table: each feature, the oldest chip and the oldest PTX version that have it.
``tests/test_codegen_targets.py`` checks the table against LLVM itself, emitting each feature for each
target in a child process.

An *architecture-specific* target (PTX ISA, "Target ISA notes": ``sm_90a``) runs only on chips of exactly
its compute capability and adds features that later chips need not have, such as ``wgmma``; a feature
marked ``arch_specific`` is had by the architecture-specific target of its capability alone, not by
``sm_90`` nor by the ``a`` targets of later chips.

>>> TARGETS["sm_90"].has("float8_mma"), TARGETS["sm_80"].has("float8_mma")
(True, False)
>>> TARGETS["sm_90a"].has("wgmma"), TARGETS["sm_90"].has("wgmma"), TARGETS["sm_90"].has("async_proxy_fence")
(True, False, True)
>>> TARGETS["sm_89"].with_ptx_limit(81).ptx_version
81
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tilevm.errors import LocatedError, SourceLocation

__all__ = ["FEATURES", "TARGETS", "CodegenError", "Feature", "Target", "find_target"]


class CodegenError(LocatedError):
    """A Thread IR program that cannot become PTX for the chosen target (reported at the user's line when the
    instruction has one): an instruction the chip lacks, a type the back end cannot hold."""


@dataclass(frozen=True)
class Feature:
    """What a feature needs: a compute capability (80 for sm_80) and a PTX ISA version (81 for 8.1); an
    ``arch_specific`` one needs the architecture-specific target of exactly that capability (``sm_90a``)."""

    capability: int
    ptx_version: int
    description: str
    arch_specific: bool = False

    @property
    def chip(self) -> str:
        """The oldest target that has the feature: ``sm_89``, ``sm_90a``."""
        return f"sm_{self.capability}{'a' if self.arch_specific else ''}"


#: every feature that not all of ``TARGETS`` have (what all have, sm_80's mma.sync f16/bf16/int8/int4,
#: ldmatrix, cp.async, shfl.sync, bf16x2 fma, needs no entry)
FEATURES: dict[str, Feature] = {
    "float8_mma": Feature(89, 84, "mma.sync on float8_e4m3 / float8_e5m2 operands"),
    "float8_convert": Feature(89, 81, "cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32, cvt.rn.f16x2.{e4m3x2,e5m2x2}"),
    "async_proxy_fence": Feature(90, 80, "fence.proxy.async.shared::cta"),
    "wgmma": Feature(
        90, 80, "wgmma.mma_async and its fence, commit_group and wait_group", arch_specific=True
    ),
}


@dataclass(frozen=True)
class Target:
    """A GPU architecture: ``name`` is PTX's ``.target`` (``sm_90``, ``sm_90a``); ``ptx_version`` the
    ``.version`` the code is emitted in, times ten (85 for PTX 8.5); ``arch_specific`` for an ``a`` target,
    whose code runs on chips of exactly ``capability``."""

    name: str
    capability: int
    ptx_version: int
    arch_specific: bool = False

    def has(self, feature: str) -> bool:
        needs = FEATURES[feature]
        if needs.arch_specific and not (self.arch_specific and self.capability == needs.capability):
            return False
        return self.capability >= needs.capability and self.ptx_version >= needs.ptx_version

    def require(self, feature: str, location: SourceLocation | None = None) -> None:
        """Raise a ``CodegenError`` at ``location`` unless this target has ``feature``."""
        if not self.has(feature):
            needs = FEATURES[feature]
            raise CodegenError(
                f"{needs.description} needs {needs.chip} and PTX {needs.ptx_version / 10:.1f}; "
                f"the target is {self.name} with PTX {self.ptx_version / 10:.1f}",
                location,
            )

    def with_ptx_limit(self, driver_ptx_version: int) -> Target:
        """This target emitting at most the PTX version a driver accepts (older drivers know older PTX)."""
        return replace(self, ptx_version=min(self.ptx_version, driver_ptx_version))

    @property
    def llvm_features(self) -> str:
        return f"+ptx{self.ptx_version}"


#: the targets, each with the newest PTX version its features need (LLVM 22 emits up to PTX 9.0)
TARGETS: dict[str, Target] = {
    "sm_80": Target("sm_80", 80, 80),
    "sm_86": Target("sm_86", 86, 80),
    "sm_89": Target("sm_89", 89, 84),
    "sm_90": Target("sm_90", 90, 85),
    "sm_90a": Target("sm_90a", 90, 85, arch_specific=True),
}


def find_target(name: str | Target) -> Target:
    """The target called ``name`` (a ``Target`` stands for itself), or a ``CodegenError`` listing the known
    ones."""
    if isinstance(name, Target):
        return name
    if name not in TARGETS:
        raise CodegenError(f"unknown target '{name}'; tilevm generates code for {', '.join(TARGETS)}")
    return TARGETS[name]
