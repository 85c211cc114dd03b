"""What runs without a GPU of loading and launching: the checks of a block against a device (limits from the
CUDA C++ Programming Guide's tables), the cubin-or-PTX choice (CUDA's compatibility rules), the grid limits,
and the launch path's driver calls against ``cuLaunchKernel``'s documented signature, through a recording
stand-in for ``cuda.bindings.driver``."""

from __future__ import annotations

import ctypes
import struct
import threading
import time
import types

import pytest
from test_cuda_ptxas import stand_in

from tilevm.errors import CudaError, LaunchError
from tilevm.runtime.cuda import driver, launch, module
from tilevm.runtime.cuda.device import DeviceProperties

# opt-in shared memory a block: 227 KiB on H100, 163 KiB on A100, 99 KiB on sm_86/sm_89 (Programming Guide)
H100 = DeviceProperties(0, "NVIDIA H100 80GB HBM3", (9, 0), 132, 227 * 1024, 13000)
A100 = DeviceProperties(1, "NVIDIA A100-SXM4-80GB", (8, 0), 108, 163 * 1024, 12080)
L4 = DeviceProperties(2, "NVIDIA L4", (8, 9), 58, 99 * 1024, 12040)
B200 = DeviceProperties(3, "NVIDIA B200", (10, 0), 148, 227 * 1024, 13000)


def test_blocks_that_fit_pass():
    module.check_fits(stand_in("axpy", "sm_90", num_threads=1024, shared_bytes=227 * 1024), H100)
    module.check_fits(stand_in("axpy", "sm_80", num_threads=1, shared_bytes=0), H100)
    module.check_fits(stand_in("axpy", "sm_90a"), H100)
    module.check_fits(stand_in("axpy", "sm_90"), B200)
    module.check_fits(stand_in("axpy", "sm_89", num_threads=256, shared_bytes=99 * 1024), L4)


@pytest.mark.parametrize(
    ("compiled", "device", "message"),
    [
        (
            stand_in("axpy", "sm_80", num_threads=1025),
            A100,
            "needs 1025 threads a block; CUDA allows 1 to 1024",
        ),
        (stand_in("axpy", "sm_80", num_threads=0), A100, "needs 0 threads a block"),
        (
            stand_in("axpy", "sm_80", shared_bytes=163 * 1024 + 1),
            A100,
            r"needs 166913 bytes of shared memory a block; device 1 \(NVIDIA A100-SXM4-80GB\) allows at most "
            "166912",
        ),
        (stand_in("axpy", "sm_90"), A100, r"compiled for sm_90; device 1 .* compute capability 8\.0"),
        (stand_in("axpy", "sm_90"), L4, r"compiled for sm_90; device 2 .* compute capability 8\.9"),
        (stand_in("axpy", "sm_70"), H100, "compiled for sm_70, which tilevm cannot load"),
        # sm_90a code is architecture-specific: compute capability 9.0 alone loads it
        (stand_in("axpy", "sm_90a"), B200, r"compiled for sm_90a; device 3 .* compute capability 10\.0"),
    ],
)
def test_blocks_that_cannot_run_are_named_errors(compiled, device, message):
    with pytest.raises(CudaError, match=message) as raised:
        module.check_fits(compiled, device)
    assert "kernel 'axpy'" in str(raised.value)


def test_load_checks_the_block_before_any_driver_call(monkeypatch):
    monkeypatch.setattr(module, "properties", lambda index: A100)
    monkeypatch.setattr(module, "bindings", lambda: pytest.fail("the driver was called"))
    with pytest.raises(CudaError, match="shared memory"):
        module.load(stand_in("axpy", "sm_80", shared_bytes=200_000), 1)


@pytest.mark.parametrize(
    ("target", "ptx", "capability", "driver_release", "ptxas_release", "wanted"),
    [
        ("sm_90", 85, (9, 0), 13000, 13000, True),
        ("sm_90", 85, (9, 0), 12080, 13000, False),  # ptxas of a newer major release than the driver
        ("sm_90", 85, (9, 0), 13000, 13050, True),  # a newer minor release: minor version compatibility
        ("sm_90", 85, (9, 0), 12040, 12080, True),
        ("sm_90", 85, (9, 0), 13000, 12080, True),  # an older major release: backward compatibility
        ("sm_90", 85, (9, 0), 13000, None, False),  # no ptxas
        ("sm_90", 85, (10, 0), 13000, 13000, False),  # Blackwell runs sm_90 PTX, not sm_90 cubins
        ("sm_90a", 85, (9, 0), 13000, 13000, True),
        ("sm_80", 80, (8, 6), 12040, 12040, True),  # same major, newer minor runs it
        ("sm_86", 80, (8, 0), 13000, 13000, False),
        ("sm_90", 85, (9, 0), 13000, 12040, False),  # ptxas 12.4 reads PTX up to 8.4
        ("sm_90", 84, (9, 0), 13000, 12040, True),
    ],
)
def test_cubin_or_ptx(target, ptx, capability, driver_release, ptxas_release, wanted):
    assert module.wants_cubin(target, ptx, capability, driver_release, ptxas_release) is wanted


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ((2**31, 1, 1), r"grid extent x=2147483648 is out of range; CUDA allows 0 <= x < 2147483648"),
        ((1, 65536, 1), r"grid extent y=65536 is out of range; CUDA allows 0 <= y < 65536"),
        ((1, 1, 65536), r"grid extent z=65536"),
        ((-1, 1, 1), r"grid extent x=-1"),
    ],
)
def test_grids_beyond_cuda_limits_are_errors(grid, message):
    with pytest.raises(LaunchError, match=message):
        launch.check_grid(grid, "axpy")


def test_grids_within_limits():
    assert launch.check_grid((2**31 - 1, 65535, 65535), "k")
    assert not launch.check_grid((0, 1, 1), "k")
    assert not launch.check_grid((5, 0, 3), "k")


class Result(int):
    """A CUresult stand-in: an int, falsy for success."""


SUCCESS, INVALID_CONTEXT, ILLEGAL_ADDRESS = Result(0), Result(201), Result(700)


class RecordingDriver(types.SimpleNamespace):
    """Answers the calls CudaLauncher makes, recording them; the first ``wrong_context`` launches fail as
    a thread without the device's context current would."""

    def __init__(
        self, wrong_context: int = 0, launch_result: Result = SUCCESS, copy_seconds: float = 0
    ) -> None:
        super().__init__(
            calls=[],
            copy_seconds=copy_seconds,
            wrong_context=wrong_context,
            launch_result=launch_result,
            CUresult=types.SimpleNamespace(
                CUDA_ERROR_INVALID_CONTEXT=INVALID_CONTEXT, CUDA_ERROR_INVALID_HANDLE=400
            ),
        )

    def cuLaunchKernel(self, *arguments):
        pointers = (ctypes.c_void_p * 5).from_address(arguments[9])
        time.sleep(self.copy_seconds)  # a driver slow to copy the arguments: a window for other threads
        slots = [ctypes.string_at(pointers[index], 8) for index in range(5)]
        self.calls.append(("cuLaunchKernel", arguments[:9], arguments[10], slots))
        if self.wrong_context:
            self.wrong_context -= 1
            return (INVALID_CONTEXT,)
        return (self.launch_result,)

    def cuCtxPushCurrent(self, context):
        self.calls.append(("cuCtxPushCurrent", context))
        return (SUCCESS,)

    def cuCtxPopCurrent(self):
        self.calls.append(("cuCtxPopCurrent",))
        return (SUCCESS, "context")

    def cuGetErrorName(self, result):
        return SUCCESS, {700: b"CUDA_ERROR_ILLEGAL_ADDRESS", 201: b"CUDA_ERROR_INVALID_CONTEXT"}[result]

    def cuGetErrorString(self, result):
        return SUCCESS, b"explanation"


@pytest.fixture
def fake_driver(monkeypatch):
    def install(fake: RecordingDriver) -> launch.CudaLauncher:
        monkeypatch.setattr(driver, "_bindings", fake)
        monkeypatch.setattr(driver, "_primary_contexts", {3: "context of device 3"})
        compiled = stand_in("axpy", "sm_90", num_threads=128, shared_bytes=4096)
        loaded = module.LoadedKernel(compiled, 3, "module", "function handle", from_cubin=False)
        monkeypatch.setattr(launch, "load", lambda compiled, index, cubin: loaded)
        return launch.CudaLauncher(compiled, 3)

    return install


VALUES = (0x7F00_0000_1000, 0x7F00_0000_2000, 0x7F00_0000_3000, 1.5, 1000)


def expected_slots(values=VALUES) -> list[bytes]:
    return [struct.pack("<Q", value) for value in values[:3]] + [
        struct.pack("<f4x", values[3]),
        struct.pack("<i4x", values[4]),
    ]


def test_a_launch_is_one_cuLaunchKernel_with_the_documented_arguments(fake_driver):
    fake = RecordingDriver()
    launcher = fake_driver(fake)
    launcher.launch((8, 2, 1), VALUES, 0xBEEF)
    # cuLaunchKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes,
    # hStream, kernelParams, extra)
    assert fake.calls == [
        ("cuLaunchKernel", ("function handle", 8, 2, 1, 128, 1, 1, 4096, 0xBEEF), 0, expected_slots())
    ]


def test_a_launch_without_the_context_retries_with_it_pushed_then_popped(fake_driver):
    fake = RecordingDriver(wrong_context=1)
    fake_driver(fake).launch((3, 1, 1), VALUES, 7)
    assert [call[0] for call in fake.calls] == [
        "cuLaunchKernel", "cuCtxPushCurrent", "cuLaunchKernel", "cuCtxPopCurrent",
    ]  # fmt: skip
    assert fake.calls[1] == ("cuCtxPushCurrent", "context of device 3")
    assert fake.calls[2][1] == ("function handle", 3, 1, 1, 128, 1, 1, 4096, 7)


def test_a_failed_launch_names_the_call_kernel_and_error(fake_driver):
    launcher = fake_driver(RecordingDriver(launch_result=ILLEGAL_ADDRESS))
    with pytest.raises(
        CudaError, match=r"cuLaunchKernel failed for kernel 'axpy': CUDA_ERROR_ILLEGAL_ADDRESS"
    ):
        launcher.launch((1, 1, 1), VALUES, 0)
    launcher = fake_driver(RecordingDriver(wrong_context=2))
    with pytest.raises(CudaError, match="CUDA_ERROR_INVALID_CONTEXT"):
        launcher.launch((1, 1, 1), VALUES, 0)


def test_an_empty_grid_calls_nothing_and_a_bad_value_fails_before_the_driver(fake_driver):
    fake = RecordingDriver()
    launcher = fake_driver(fake)
    launcher.launch((0, 1, 1), VALUES, 0)
    with pytest.raises(LaunchError, match=r"parameter #4 \(i32\)"):
        launcher.launch((1, 1, 1), (*VALUES[:4], 2**40), 0)
    assert fake.calls == []


def test_threads_launching_one_kernel_never_mix_their_arguments(fake_driver):
    fake = RecordingDriver(copy_seconds=1e-5)
    launcher = fake_driver(fake)
    values = {stream: (16 * stream, 32 * stream, 48 * stream, stream / 4, -stream) for stream in (1, 2, 3)}

    def work(stream):
        for _ in range(60):
            launcher.launch((1, 1, 1), values[stream], stream)

    threads = [threading.Thread(target=work, args=(stream,)) for stream in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.calls) == 180
    for _, arguments, _, slots in fake.calls:
        assert slots == expected_slots(values[arguments[8]])


def test_a_rebound_launcher_takes_some_values_per_launch_and_keeps_the_others(fake_driver):
    fake = RecordingDriver()
    launcher = fake_driver(fake)
    # parameters #1 and #4 are the launch's values 1 and 0; #0, #2 and #3 the constants 0, 1 and 2
    rebound = launcher.rebound((2, 1, 3, 4, 0), 2, (VALUES[0], VALUES[2], VALUES[3]))
    other = (0x7F00_0000_4000, 0x7F00_0000_5000, 0x7F00_0000_6000, -2.25, 7)
    rebound.launch((4, 1, 1), (VALUES[4], VALUES[1]), 5)
    launcher.launch((2, 1, 1), other, 6)  # its own buffer: the rebound constants stay
    rebound.launch((4, 1, 1), (-3, 0x7F00_0000_7000), 5)
    assert [call[3] for call in fake.calls] == [
        expected_slots(),
        expected_slots(other),
        expected_slots((VALUES[0], 0x7F00_0000_7000, *VALUES[2:4], -3)),
    ]
    assert [call[1][1:2] + call[1][8:] for call in fake.calls] == [(4, 5), (2, 6), (4, 5)]


def test_a_rebound_launchers_constants_and_values_are_checked(fake_driver):
    launcher = fake_driver(RecordingDriver())
    with pytest.raises(LaunchError, match=r"kernel 'axpy', parameter #3 \(f32\): expected a number, got str"):
        launcher.rebound((2, 1, 3, 4, 0), 2, (VALUES[0], VALUES[2], "1.5"))
    with pytest.raises(LaunchError, match=r"positions \(2, 1, 3, 4, 0\) for 5 of 2 values and 2 constants"):
        launcher.rebound((2, 1, 3, 4, 0), 2, (VALUES[0], VALUES[2]))  # position 4 has no constant
    rebound = launcher.rebound((2, 1, 3, 4, 0), 2, (VALUES[0], VALUES[2], VALUES[3]))
    with pytest.raises(LaunchError, match="kernel 'axpy' takes 2 parameter values, got 5"):
        rebound.launch((1, 1, 1), VALUES, 0)


UNSUPPORTED_PTX_VERSION, INVALID_PTX = Result(222), Result(218)
ERROR_NAMES = {222: b"CUDA_ERROR_UNSUPPORTED_PTX_VERSION", 218: b"CUDA_ERROR_INVALID_PTX"}


class LoadingDriver(RecordingDriver):
    """Answers the calls of loading a module, recording them: a cubin is refused with ``cubin_result``
    (when it is an error), the PTX with ``ptx_result``, whose JIT log then says so."""

    CUjit_option = types.SimpleNamespace(CU_JIT_ERROR_LOG_BUFFER=1, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES=2)

    def __init__(self, cubin_result: Result = SUCCESS, ptx_result: Result = SUCCESS) -> None:
        super().__init__()
        self.cubin_result, self.ptx_result = cubin_result, ptx_result

    def cuModuleLoadData(self, image):
        self.calls.append(("cuModuleLoadData", image))
        return (self.cubin_result, None if self.cubin_result else "module from the cubin")

    def cuModuleLoadDataEx(self, source, count, options, values):
        self.calls.append(("cuModuleLoadDataEx", source, count, options))
        if self.ptx_result:
            log = b"ptxas fatal: the JIT's complaint\0"
            values[0][: len(log)] = log
            return (self.ptx_result, None)
        return (SUCCESS, "module from the PTX")

    def cuModuleGetFunction(self, loaded, name):
        self.calls.append(("cuModuleGetFunction", loaded, name))
        return (SUCCESS, f"function of the {loaded}")

    def cuGetErrorName(self, result):
        return SUCCESS, ERROR_NAMES[result]


@pytest.fixture
def loading_driver(monkeypatch):
    def install(fake: LoadingDriver) -> None:
        monkeypatch.setattr(driver, "_bindings", fake)
        monkeypatch.setattr(driver, "_primary_contexts", {0: "context of device 0"})
        monkeypatch.setattr(module, "properties", lambda index: H100)
        monkeypatch.setattr(module, "_loaded", {})

    return install


CUBIN = b"\x7fELF a cubin"


def test_a_cubin_the_driver_loads_is_the_module(loading_driver):
    fake = LoadingDriver()
    loading_driver(fake)
    loaded = module.load(stand_in("axpy", "sm_90"), 0, CUBIN)
    assert loaded.from_cubin
    assert (loaded.module, loaded.function) == (
        "module from the cubin",
        "function of the module from the cubin",
    )
    assert [call[0] for call in fake.calls] == [
        "cuCtxPushCurrent", "cuModuleLoadData", "cuModuleGetFunction", "cuCtxPopCurrent",
    ]  # fmt: skip
    assert fake.calls[1] == ("cuModuleLoadData", CUBIN)


def test_a_cubin_the_driver_refuses_is_replaced_by_the_ptx(loading_driver):
    fake = LoadingDriver(cubin_result=UNSUPPORTED_PTX_VERSION)
    loading_driver(fake)
    compiled = stand_in("axpy", "sm_90")
    loaded = module.load(compiled, 0, CUBIN)
    assert not loaded.from_cubin
    assert loaded.module == "module from the PTX"
    assert [call[0] for call in fake.calls] == [
        "cuCtxPushCurrent", "cuModuleLoadData", "cuModuleLoadDataEx", "cuModuleGetFunction",
        "cuCtxPopCurrent",
    ]  # fmt: skip
    assert fake.calls[2][1] == compiled.ptx.encode() + b"\0"  # the PTX as a C string


def test_a_refused_cubin_and_ptx_raise_both_reasons(loading_driver):
    loading_driver(LoadingDriver(cubin_result=UNSUPPORTED_PTX_VERSION, ptx_result=INVALID_PTX))
    with pytest.raises(CudaError) as raised:
        module.load(stand_in("axpy", "sm_90"), 0, CUBIN)
    message = str(raised.value)
    assert "kernel 'axpy'" in message
    assert "cuModuleLoadData refused the cubin: CUDA_ERROR_UNSUPPORTED_PTX_VERSION" in message
    assert "CUDA_ERROR_INVALID_PTX" in message
    assert "ptxas fatal: the JIT's complaint" in message
