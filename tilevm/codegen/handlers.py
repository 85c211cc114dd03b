"""Every code generation handler, gathered: the instruction handlers of each family module (``HANDLERS``)
and the expression handlers (``EXPRESSIONS``), so that ``FunctionContext`` dispatches through two tables."""

from __future__ import annotations

from tilevm.codegen import control, memory
from tilevm.codegen.context import ExpressionHandler, InstructionHandler

__all__ = ["EXPRESSIONS", "INSTRUCTIONS"]

INSTRUCTIONS: dict[type, InstructionHandler] = {**control.HANDLERS, **memory.HANDLERS}
EXPRESSIONS: dict[type, ExpressionHandler] = {}
