"""Every code generation handler, gathered: the instruction handlers of each family module (``HANDLERS``)
and the expression handlers (``EXPRESSIONS``), so that ``FunctionContext`` dispatches through two tables."""

from __future__ import annotations

from tilevm.codegen import arithmetic, casts, compute, control, expressions, memory, warpgroup
from tilevm.codegen.context import ExpressionHandler, InstructionHandler

__all__ = ["EXPRESSIONS", "INSTRUCTIONS"]

INSTRUCTIONS: dict[type, InstructionHandler] = {
    **control.HANDLERS,
    **memory.HANDLERS,
    **compute.HANDLERS,
    **warpgroup.HANDLERS,
}
EXPRESSIONS: dict[type, ExpressionHandler] = {
    **expressions.EXPRESSIONS,
    **arithmetic.EXPRESSIONS,
    **casts.EXPRESSIONS,
}
