"""The LLVM worker runs the llvmlite that the user's process imports, also when ``PYTHONPATH`` chose it (the
worker's isolated Python ignores that variable): its command names llvmlite's directory, and the worker
imports llvmlite from there ahead of its interpreter's own packages."""

from __future__ import annotations

import pathlib
import subprocess

import llvmlite

from tilevm.codegen import emit


def test_the_command_names_the_directory_this_process_imports_llvmlite_from() -> None:
    command = emit.worker_command()
    assert command[1:3] == ["-I", str(pathlib.Path(emit.__file__).with_name("emit_worker.py"))]
    assert pathlib.Path(command[3]) == pathlib.Path(llvmlite.__file__).parent.parent


def test_the_worker_imports_llvmlite_from_the_directory_it_is_given(tmp_path: pathlib.Path) -> None:
    package = tmp_path / "llvmlite"
    package.mkdir()
    (package / "__init__.py").write_text('raise SystemExit("the llvmlite of " + __file__)\n')
    command = [*emit.worker_command()[:3], str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert completed.returncode == 1
    assert completed.stderr.strip() == f"the llvmlite of {package / '__init__.py'}"
