"""What tilevm needs to know about a CUDA device, queried once per device: its compute capability, name,
multiprocessor count, opt-in shared memory limit, and the newest PTX ISA its driver loads. Also the pure
tables behind them: the PTX ISA version of each CUDA release and the codegen target of each chip (one of
``tilevm.codegen.targets.TARGETS``).

>>> target_for((8, 7)), target_for((9, 0)), target_for((12, 0))
('sm_86', 'sm_90a', 'sm_90')
>>> max_ptx_version(12060), max_ptx_version(13000)
(85, 90)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tilevm.codegen.targets import TARGETS, Target
from tilevm.errors import CudaError
from tilevm.runtime.cuda.driver import bindings, check

__all__ = [
    "PTX_ISA_RELEASES",
    "DeviceProperties",
    "cuda_version_text",
    "loads_on",
    "max_ptx_version",
    "properties",
    "runs_cubin",
    "target_for",
]

#: Each PTX ISA version (times ten, as ``tilevm.codegen.targets`` writes it: 87 for 8.7) and the first CUDA
#: release that has it, as ``cuDriverGetVersion`` writes a release (1000 * major + 10 * minor), oldest first:
#: the PTX ISA document's release history. CUDA 12.6 brought no new PTX version (12.5 and 12.6 stop at 8.5).
PTX_ISA_RELEASES: tuple[tuple[int, int], ...] = (
    (11000, 70),
    (11010, 71),
    (11020, 72),
    (11030, 73),
    (11040, 74),
    (11050, 75),
    (11060, 76),
    (11070, 77),
    (11080, 78),
    (12000, 80),
    (12010, 81),
    (12020, 82),
    (12030, 83),
    (12040, 84),
    (12050, 85),
    (12070, 86),
    (12080, 87),
    (12090, 88),
    (13000, 90),
    (13010, 91),
    (13020, 92),
    (13030, 93),
)


def cuda_version_text(version: int) -> str:
    """``12080`` (as ``cuDriverGetVersion`` reports CUDA 12.8) as ``"12.8"``."""
    return f"{version // 1000}.{version % 1000 // 10}"


def max_ptx_version(driver_version: int) -> int:
    """The newest PTX ISA version (times ten) a driver of CUDA release ``driver_version`` (as
    ``cuDriverGetVersion`` reports it) loads: what ``Target.with_ptx_limit`` takes.

    A driver newer than the table loads at least the newest version the table knows. Drivers older than
    CUDA 11.0 cannot run sm_80, tilevm's oldest target, and are an error.
    """
    newest = None
    for release, ptx_version in PTX_ISA_RELEASES:
        if release > driver_version:
            break
        newest = ptx_version
    if newest is None:
        raise CudaError(
            f"the CUDA driver supports CUDA {cuda_version_text(driver_version)}; "
            "tilevm needs CUDA 11.0 or newer"
        )
    return newest


def loads_on(target: Target, capability: tuple[int, int]) -> bool:
    """Whether ``target``'s PTX loads on a chip of ``capability``: any chip at least as new, but an
    architecture-specific target's only on its own capability (PTX ISA, "Target ISA notes")."""
    # codegen's targets write a capability as one number (86 for 8.6); minor versions stay below 10
    chip = capability[0] * 10 + capability[1]
    return chip == target.capability if target.arch_specific else chip >= target.capability


def target_for(capability: tuple[int, int]) -> str:
    """The codegen target (a key of ``tilevm.codegen.targets.TARGETS``) for a chip of compute
    ``capability``: the newest target it can run, the architecture-specific one of its own capability
    first (an H100 gets ``sm_90a``, which has ``wgmma``). Chips newer than sm_90 get sm_90 PTX, which their
    driver compiles forward when it loads it (``sm_90a`` code runs on compute capability 9.0 alone).
    """
    fitting = [target for target in TARGETS.values() if loads_on(target, capability)]
    if not fitting:
        major, minor = capability
        raise CudaError(
            f"the GPU has compute capability {major}.{minor}; "
            "tilevm needs sm_80 (compute capability 8.0) or newer"
        )
    return max(fitting, key=lambda target: (target.capability, target.arch_specific)).name


def runs_cubin(target: str, capability: tuple[int, int]) -> bool:
    """Whether a cubin built for ``target`` runs on a chip of ``capability``: same major version, minor at
    least the target's (CUDA's binary compatibility rule), the same minor too for an architecture-specific
    target. Otherwise only the PTX can be loaded."""
    chosen = TARGETS[target]
    major, minor = divmod(chosen.capability, 10)
    return capability[0] == major and (
        capability[1] == minor if chosen.arch_specific else capability[1] >= minor
    )


@dataclass(frozen=True)
class DeviceProperties:
    """One CUDA device as tilevm sees it."""

    index: int
    name: str
    capability: tuple[int, int]
    multiprocessor_count: int
    #: the most dynamic shared memory one block may use once it opts in (cuFuncSetAttribute)
    max_shared_bytes_optin: int
    #: the driver's CUDA release, as ``cuDriverGetVersion`` reports it (12080 for 12.8)
    driver_version: int

    @property
    def target(self) -> str:
        """The codegen target for this device (``target_for``)."""
        return target_for(self.capability)

    @property
    def max_ptx_version(self) -> int:
        """The newest PTX ISA version (times ten) this device's driver loads."""
        return max_ptx_version(self.driver_version)


@functools.cache
def properties(index: int) -> DeviceProperties:
    """The properties of CUDA device ``index``, queried from the driver once per process."""
    driver = bindings()
    device = check(driver.cuDeviceGet(index), f"cuDeviceGet({index})")
    attribute = driver.CUdevice_attribute

    def query(name: str) -> int:
        return check(
            driver.cuDeviceGetAttribute(getattr(attribute, name), device), f"cuDeviceGetAttribute({name})"
        )

    name = check(driver.cuDeviceGetName(256, device), "cuDeviceGetName")
    return DeviceProperties(
        index=index,
        name=name.split(b"\0", 1)[0].decode(),
        capability=(
            query("CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR"),
            query("CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR"),
        ),
        multiprocessor_count=query("CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT"),
        max_shared_bytes_optin=query("CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN"),
        driver_version=check(driver.cuDriverGetVersion(), "cuDriverGetVersion"),
    )
