"""The "Math operators" table of docs/dsl.md lists every unary and binary operator of the IR, once, and says
"approximate" exactly for the float functions that fold_constants may not evaluate (their GPU result is not
the correctly rounded one)."""

import pathlib
import re

from tilevm import lang
from tilevm.ir.expr import BINARY_OPS, FLOAT_ONLY_OPS, UNARY_OPS
from tilevm.ir.semantics import CORRECTLY_ROUNDED_UNARY

DSL_REFERENCE = pathlib.Path(__file__).parent.parent / "docs" / "dsl.md"


def table_rows() -> dict[str, list[str]]:
    """The rows of the table in docs/dsl.md's "## Math operators" section: op -> its cells."""
    section = DSL_REFERENCE.read_text().split("\n## Math operators\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    ops = [row[0].strip("`") for row in cells]
    assert len(ops) == len(set(ops)), ops
    return dict(zip(ops, cells, strict=True))


def test_every_operator_is_listed_once():
    assert sorted(table_rows()) == sorted((*UNARY_OPS, *BINARY_OPS))


def test_approximate_are_the_float_functions_not_correctly_rounded():
    rows = table_rows()
    approximate = {op for op, row in rows.items() if row[4] == "approximate"}
    expected = {op for op in UNARY_OPS if op in FLOAT_ONLY_OPS and op not in CORRECTLY_ROUNDED_UNARY}
    assert approximate == expected == {"rsqrt", "exp", "exp2", "log", "log2", "sin", "cos", "tanh"}
    assert all(row[4].startswith("exact") for op, row in rows.items() if op not in approximate)


def test_the_dsl_spelling_of_each_builtin_is_a_tilevm_function():
    for op, row in table_rows().items():
        spelled = re.fullmatch(r"`tv\.(\w+)\(x(, y)?\)`", row[1])
        if spelled:
            assert getattr(lang, spelled[1]).__name__ in (op, f"{op}imum"), op
