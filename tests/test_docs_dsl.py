"""docs/dsl.md documents every kernel builtin, and its Python blocks run as written (each checks itself)."""

import pathlib
import re
import runpy

import pytest

import tilevm
from tilevm import dtypes

DOC = pathlib.Path(__file__).parent.parent / "docs" / "dsl.md"
TEXT = DOC.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)
# what tilevm exports besides the kernel language: the data types (tilevm.dtypes) and host classes
NOT_KERNEL_LANGUAGE = {*dtypes.__all__, "dtypes", "__version__", "Kernel", "CompilationError", "CudaError",
                       "LaunchError", "SourceLocation", "TilevmError"}  # fmt: skip


def documented_names() -> set[str]:
    """The ``tv.name`` spelled in the page's headings (each heading is one or more signatures)."""
    headings = [line for line in TEXT.splitlines() if line.startswith("#")]
    return {name for heading in headings for name in re.findall(r"\btv\.([A-Za-z_]\w*)", heading)}


def test_every_kernel_builtin_has_a_heading():
    missing = sorted(set(tilevm.__all__) - NOT_KERNEL_LANGUAGE - documented_names())
    assert not missing, f"docs/dsl.md has no heading for tv.{', tv.'.join(missing)}"


def test_every_heading_names_a_builtin_that_exists():
    assert {name for name in documented_names() if not hasattr(tilevm, name)} == set()


def test_the_page_has_its_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_python_block_runs(index, tmp_path):
    # a kernel's source is read from its file, as a user's would be: run each block as a file of its own
    path = tmp_path / f"dsl_block_{index}.py"
    path.write_text(BLOCKS[index])
    runpy.run_path(str(path), run_name="__main__")  # each block asserts its results against torch or numpy


def test_the_readme_links_to_the_reference_and_only_to_files_of_the_project():
    readme = (DOC.parent.parent / "README.md").read_text()
    assert "docs/dsl.md" in readme
    assert "../" not in readme  # a user's clone has nothing above the project
