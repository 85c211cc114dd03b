"""The capability table ``targets.FEATURES`` against LLVM and ptxas themselves.

Every form of ``codegen_forms`` (each Thread IR instruction and expression on every dtype and mode its type
rule allows) is compiled for every target in a child process (LLVM aborts the process on what a chip lacks),
and must give PTX that ptxas assembles for that chip exactly when the table says the target has the form's
feature, and a ``CodegenError`` otherwise, never a crash. Without the table's guard, a form whose feature
the target lacks must fail (LLVM aborts, or ptxas refuses its PTX): the table asks for no more than needed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from codegen_forms import Form, all_forms
from codegen_support import ChildOutcome, assemble_together, compile_in_child

from tilevm.codegen import TARGETS, CodegenError, compile_to_ptx
from tilevm.codegen.targets import FEATURES
from tilevm.ir.rewrite import walk_expressions, walk_instructions
from tilevm.ir.thread import THREAD_IR

FORMS = all_forms()


def _expected(form: Form, target: str) -> bool:
    return form.feature is None or TARGETS[target].has(form.feature)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict[str, ChildOutcome]]:
    """Every form's outcome on every target, two children at a time."""
    names = [form.name for form in FORMS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda target: compile_in_child(target, names), TARGETS)
        return dict(zip(TARGETS, results, strict=True))


def test_every_thread_ir_instruction_and_expression_has_a_form() -> None:
    instructions = {type(node) for form in FORMS for node in walk_instructions(form.program.body)}
    expressions = {type(node) for form in FORMS for node in walk_expressions(form.program)}
    assert set(THREAD_IR.instructions) - instructions == set()
    assert set(THREAD_IR.expressions) - expressions == set()


def test_every_feature_has_a_form() -> None:
    assert {form.feature for form in FORMS} - {None} == set(FEATURES)


@pytest.mark.parametrize("target", TARGETS)
def test_forms_compile_exactly_where_the_table_says(
    target: str, outcomes: dict[str, dict[str, ChildOutcome]]
) -> None:
    problems = []
    for form in FORMS:
        outcome = outcomes[target][form.name]
        expected = _expected(form, target)
        if outcome.crashed or outcome.error:
            problems.append(f"{form.name}: {outcome.crashed or outcome.error}")
        elif expected and outcome.refused:
            problems.append(f"{form.name}: refused although {target} has '{form.feature}': {outcome.refused}")
        elif not expected and outcome.ptx:
            problems.append(f"{form.name}: compiled although {target} lacks '{form.feature}'")
    assert not problems, "\n".join(problems)
    compiled = {name: outcome.ptx for name, outcome in outcomes[target].items() if outcome.ptx}
    assert assemble_together(compiled, target) == []


def _lacking() -> list[tuple[str, str]]:
    return [
        (feature, target) for feature in FEATURES for target in TARGETS if not TARGETS[target].has(feature)
    ]


@pytest.mark.parametrize(("feature", "target"), _lacking())
def test_the_parent_refuses_what_a_target_lacks(feature: str, target: str) -> None:
    form = next(form for form in FORMS if form.feature == feature)
    with pytest.raises(CodegenError) as error:
        compile_to_ptx(form.program, target)
    needs = FEATURES[feature]
    assert needs.description in error.value.message
    assert f"the target is {target}" in error.value.message


@pytest.mark.parametrize("target", sorted({target for _, target in _lacking()}))
def test_without_the_guard_what_a_target_lacks_fails(target: str) -> None:
    """One form per lacking feature (the first that needs it), compiled with every feature claimed."""
    forms = [
        next(form for form in FORMS if form.feature == feature)
        for feature, lacking in _lacking()
        if lacking == target
    ]
    outcomes = compile_in_child(target, [form.name for form in forms], unguarded=True)
    compiled = {name: outcome.ptx for name, outcome in outcomes.items() if outcome.ptx}
    assembled = set(compiled) - set(assemble_together(compiled, target))
    assert assembled == set(), f"the table refuses these for {target}, but they assemble: {sorted(assembled)}"
