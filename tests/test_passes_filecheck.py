"""The FileCheck-style checker: each kind of check line holds where it should and fails where it should not,
with a message naming the check line, the reason and the input line."""

import re

import pytest

from tilevm.passes.filecheck import FileCheckError, check_pass, filecheck

TEXT = """kernel k(%n: int32) num_threads=32 {
  %x.1: int32 = declare(init=%n * 2)
  %y: int32 = declare(init=%x.1 + %n)

  sync()
}"""


@pytest.mark.parametrize(
    "checks",
    [
        "CHECK: declare(init=%N * 2)",
        "CHECK: %X: int32 = declare\nCHECK-NEXT: %Y: int32 = declare(init=%X + %N)",
        "CHECK: %X: int32 =\nCHECK-SAME: declare(\nCHECK-SAME: init=%N * 2)",
        "CHECK: + %N)\nCHECK-EMPTY:\nCHECK-NEXT: sync()",
        "CHECK: kernel k\nCHECK-NOT: sync\nCHECK: %Y: int32 = declare(init=%X + %N)\nCHECK: sync()",
        "CHECK: {{%[a-z]\\.1}}: int32    =   declare",
        "# CHECK: declare\n this line is no check\n// CHECK: sync",
    ],
)
def test_checks_that_hold(checks):
    filecheck(TEXT, checks)


@pytest.mark.parametrize(
    ("checks", "message", "marked_line"),
    [
        ("CHECK: declare(init=%N * 3)", "check line 1, CHECK: declare(init=%N * 3)\nno match from line 1", 1),
        (
            "CHECK: %Y: int32 = declare(init=%X +\nCHECK: %X: int32",
            "check line 2, CHECK: %X: int32\nno match from line 3",
            3,
        ),
        ("CHECK: %X: int32 =\nCHECK-NEXT: sync()", "CHECK-NEXT: sync()\nit must match on line 3", 3),
        ("CHECK: %X: int32 =\nCHECK-SAME: %n * 2\nCHECK-SAME: %n", "check line 3, CHECK-SAME: %n\n", 2),
        ("CHECK: %X: int32 =\nCHECK-EMPTY:", "CHECK-EMPTY: \nline 3 is not empty", 3),
        ("CHECK: kernel\nCHECK-NOT: %n + 1\nCHECK-NOT: + %N\nCHECK: sync", "CHECK-NOT: + %N\nit matches", 3),
        (
            "CHECK: declare(init=%Y + %N)\nCHECK-NOT: sync",
            "check line 2, CHECK-NOT: sync\nit matches on line 5",
            5,
        ),
        ("CHECK-NEXT: kernel", "CHECK-NEXT needs a match before it", 1),
        ("CHECK: sync()\nCHECK-NEXT: }\nCHECK-NEXT: more", "the text ends after line 6", 6),
        # %A and %B must be two variables, so %B cannot be %n again
        ("CHECK: declare(init=%A * 2)\nCHECK: declare(init=%X + %B)", "no match from line 2", 2),
    ],
)
def test_checks_that_fail_say_which_line_and_why(checks, message, marked_line):
    with pytest.raises(FileCheckError) as caught:
        filecheck(TEXT, checks)
    text = str(caught.value)
    assert message in text
    marked = [line for line in text.splitlines() if line.startswith(">>")]
    assert marked == [f">> {marked_line:4} | {TEXT.splitlines()[marked_line - 1]}"]


def test_names_bind_once_and_must_then_be_the_same_variable():
    filecheck(TEXT, "CHECK: %A: int32 = declare(init=%B * 2)\nCHECK: init=%A + %B")
    with pytest.raises(FileCheckError, match=re.escape("variables: %A = %x.1, %B = %n")):
        filecheck(TEXT, "CHECK: %A: int32 = declare(init=%B * 2)\nCHECK: init=%B + %A")


def test_a_name_does_not_match_a_longer_name():
    with pytest.raises(FileCheckError, match="no match"):
        filecheck("%x.1 = f(%x)", "CHECK: %A = f(%A)")


def test_a_misspelt_check_is_an_error_not_a_comment():
    with pytest.raises(
        FileCheckError, match="check line 2: unknown check CHECK-NXET; use one of CHECK, CHECK-NEXT"
    ):
        filecheck(TEXT, "CHECK: kernel\n  CHECK-NXET: declare")


def test_checks_without_check_lines_are_an_error():
    with pytest.raises(FileCheckError, match="no CHECK lines"):
        filecheck(TEXT, "declare")


def test_check_pass_parses_runs_verifies_and_checks():
    def drop_last(program):
        return type(program)(program.name, program.params, program.num_threads, program.body[:-1])

    result = check_pass(drop_last, TEXT, "CHECK: declare(init=%X + %N)\nCHECK-NEXT: }")
    assert len(result.body) == 2
