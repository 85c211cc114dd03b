"""Every instruction is defined once with all its parts: a name in the text form, a type rule, a meaning in
the reference executor."""

import dataclasses

from tilevm import ir
from tilevm.ir.inst import Instruction
from tilevm.runtime.reference import HANDLERS

#: instructions with no operands and no attributes: nothing for a type rule to check
WITHOUT_OPERANDS = {ir.CopyAsyncCommit, ir.Sync}


def tilevm_subclasses(cls):
    """Subclasses defined in tilevm itself (tests define throwaway ones, which must not count)."""
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("tilevm."):
            yield sub
        yield from tilevm_subclasses(sub)


def test_every_instruction_class_is_listed():
    assert set(tilevm_subclasses(Instruction)) == set(ir.INSTRUCTION_CLASSES)


def test_names_are_unique_and_fields_are_keyword_only():
    names = [cls.opname for cls in ir.INSTRUCTION_CLASSES]
    assert all(names) and len(set(names)) == len(names)
    for cls in ir.INSTRUCTION_CLASSES:
        assert all(item.kw_only for item in dataclasses.fields(cls)), cls.__name__


def test_every_instruction_has_a_type_rule_and_an_executor_handler():
    for cls in ir.INSTRUCTION_CLASSES:
        has_fields = [item.name for item in dataclasses.fields(cls) if item.name != "loc"]
        if cls not in WITHOUT_OPERANDS:
            assert has_fields and cls.result_type is not Instruction.result_type, cls.__name__
        assert cls in HANDLERS, cls.__name__
