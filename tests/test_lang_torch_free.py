"""The DSL front end imports no torch: it compiles from torch-free descriptions of the launch values, and
the launcher (which needs torch) is imported only when first used."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_no_module_of_the_dsl_imports_torch():
    output = run_python(
        """
        import importlib, pkgutil, sys
        import tilevm.lang
        modules = [info.name for info in pkgutil.walk_packages(tilevm.lang.__path__, "tilevm.lang.")]
        for name in modules:
            importlib.import_module(name)
        print(len(modules), "torch" in sys.modules)
        import tilevm as tv
        tv.kernel  # the launcher: torch comes with it
        print("torch" in sys.modules)
        """,
        ROOT,
    )
    count, torch_after_dsl, torch_after_launcher = output.split()
    assert int(count) >= 10  # every module of tilevm/lang was imported
    assert (torch_after_dsl, torch_after_launcher) == ("False", "True")


def test_a_kernel_compiles_from_descriptions_without_torch(tmp_path):
    (tmp_path / "scaled_copy.py").write_text(
        textwrap.dedent(
            """
            import tilevm as tv

            def scaled_copy(x: tv.Tensor, out: tv.Tensor, n: int, BLOCK: tv.constexpr):
                start = tv.block_idx() * BLOCK
                tile = tv.load_global(x, offsets=[start], shape=[BLOCK])
                tv.store_global(out, tv.cast(tile * 2.0, tv.float32), offsets=[start])
            """
        )
    )
    output = run_python(
        """
        import sys
        from tilevm import float16, float32, int32, ir
        from tilevm.lang.frontend import compile_kernel
        from tilevm.lang.parameters import ConstexprParameter, ScalarParameter, TensorParameter
        from scaled_copy import scaled_copy

        def vector(name, dtype):
            return TensorParameter(name, dtype, 1, divisibility=16, unit_strides=(True,),
                                   size_divisibility=(16,), stride_divisibility=(1,))

        parameters = (vector("x", float16), vector("out", float32), ScalarParameter("n", int32, 1),
                      ConstexprParameter("BLOCK", 64))
        print(ir.print_program(compile_kernel(scaled_copy, parameters, 32)))
        print("torch" in sys.modules)
        """,
        tmp_path,
    )
    *program, torch_imported = output.strip().splitlines()
    assert torch_imported == "False"
    assert program[0] == (
        "kernel scaled_copy(%x: ptr<float16> divisibility=16, %x_size0: int32 divisibility=16, "
        "%out: ptr<float32> divisibility=16, %out_size0: int32 divisibility=16, %n: int32) num_threads=32 {"
    )
    assert any("%tile: register<float16, [64]> = load_global(tensor=%x.1, offsets=[%start]" in line
               for line in program)  # fmt: skip
