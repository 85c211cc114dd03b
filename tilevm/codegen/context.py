"""``FunctionContext``: the state of generating one kernel's LLVM function, and the helpers every handler
uses.

Code generation walks the Thread IR body once. A handler for an instruction class,
``def _x(context: FunctionContext, instruction) -> None``, emits LLVM instructions at ``context.builder``
and binds the instruction's outputs (``bind``); a handler for an expression class,
``def _x(context: FunctionContext, expr) -> ir.Value``, returns the value. Each family module exports
``HANDLERS`` (instructions) or ``EXPRESSIONS`` (expressions); ``handlers.py`` gathers them.

Values bound by ``let`` and instruction outputs are LLVM SSA values. A ``declare``d variable lives in an
``alloca`` of the entry block, which LLVM's ``mem2reg`` turns back into SSA registers: structured control
flow needs no phi bookkeeping here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tilevm.codegen.llvm_types import ir, llvm_type
from tilevm.codegen.targets import CodegenError, Target
from tilevm.errors import SourceLocation
from tilevm.ir.expr import Expr, Var
from tilevm.ir.inst import Instruction

__all__ = ["ExpressionHandler", "FunctionContext", "InstructionHandler"]

InstructionHandler = Callable[["FunctionContext", Instruction], None]
ExpressionHandler = Callable[["FunctionContext", Expr], ir.Value]


class FunctionContext:
    """One kernel function being built: its module, builder, target, and the LLVM value of every variable.

    ``shared_memory`` is the block's dynamic shared memory (an ``addrspace(3)`` global of unknown size), which
    ``shared_pointer<dtype>(offset)`` addresses; ``location`` is the source line of the instruction being
    generated, for errors.
    """

    def __init__(
        self,
        module: ir.Module,
        function: ir.Function,
        target: Target,
        shared_memory: ir.GlobalVariable,
        instructions: dict[type, InstructionHandler],
        expressions: dict[type, ExpressionHandler],
    ) -> None:
        self.module = module
        self.function = function
        self.target = target
        self.shared_memory = shared_memory
        self.location: SourceLocation | None = None
        self._instructions = instructions
        self._expressions = expressions
        # The entry block holds the stack slots and the values computed once; ``finish`` ends it with a
        # branch to the body, which the builder fills.
        self._entry = function.append_basic_block("entry")
        self._allocas = ir.IRBuilder(self._entry)
        self.builder = ir.IRBuilder(function.append_basic_block("body"))
        self._values: dict[Var, ir.Value] = {}
        #: per vector of 3, 5, 6 or 7-bit elements made from 32-bit words by a bitcast: (itself, the words)
        self.words_of_odd: dict[int, tuple[ir.Value, list[ir.Value]]] = {}
        self._slots: dict[Var, ir.AllocaInstr] = {}
        self._declarations: dict[str, ir.Function] = {}
        self._cache: dict[tuple, ir.Value] = {}

    # -- errors --------------------------------------------------------------------------------------
    def error(self, message: str) -> CodegenError:
        """A ``CodegenError`` at the instruction being generated (raise it)."""
        return CodegenError(message, self.location)

    def require(self, feature: str) -> None:
        """Fail at the current instruction unless the target has ``feature`` (``targets.FEATURES``)."""
        self.target.require(feature, self.location)

    # -- walking the program -------------------------------------------------------------------------
    def body(self, instructions: Sequence[Instruction]) -> None:
        """Generate a Thread IR body at the builder's position."""
        for instruction in instructions:
            handler = self._instructions.get(type(instruction))
            if handler is None:
                raise CodegenError(
                    f"code generation does not handle the Thread IR instruction '{instruction.opname}'",
                    instruction.loc or self.location,
                )
            outer = self.location
            self.location = instruction.loc or outer
            try:
                handler(self, instruction)
            finally:
                self.location = outer

    def value(self, expr: Expr) -> ir.Value:
        """The LLVM value of a Thread IR expression, generated at the builder's position."""
        if isinstance(expr, Var):
            return self.read(expr)
        handler = self._expressions.get(type(expr))
        if handler is None:
            name = expr.opname or type(expr).__name__
            raise self.error(f"code generation does not handle the expression '{name}'")
        return handler(self, expr)

    # -- variables -----------------------------------------------------------------------------------
    def bind(self, variable: Var, value: ir.Value) -> None:
        """``variable`` (defined once: a ``let`` or an instruction's output) is ``value`` from here on."""
        self._values[variable] = value

    def declare(self, variable: Var, initial: ir.Value) -> None:
        """A mutable ``variable`` (``declare``): a stack slot in the entry block, set to ``initial`` here."""
        slot = self._allocas.alloca(llvm_type(variable.type), name=_llvm_name(variable))
        self._slots[variable] = slot
        self.builder.store(initial, slot)

    def assign(self, variable: Var, value: ir.Value) -> None:
        self.builder.store(value, self._slots[variable])

    def read(self, variable: Var) -> ir.Value:
        if variable in self._values:
            return self._values[variable]
        if variable in self._slots:
            return self.builder.load(self._slots[variable], typ=llvm_type(variable.type))
        raise self.error(f"'%{variable.name}' is used before it is defined")

    # -- calls -----------------------------------------------------------------------------------------
    def intrinsic(self, name: str, return_type: ir.Type, argument_types: Sequence[ir.Type]) -> ir.Function:
        """The declaration of LLVM intrinsic ``name`` (once per module: LLVM refuses a second)."""
        declaration = self._declarations.get(name)
        if declaration is None:
            signature = ir.FunctionType(return_type, list(argument_types))
            declaration = ir.Function(self.module, signature, name=name)
            self._declarations[name] = declaration
        return declaration

    def call(self, name: str, return_type: ir.Type, arguments: Sequence[ir.Value]) -> ir.Value:
        """A call of intrinsic ``name`` on ``arguments`` (its argument types are theirs)."""
        function = self.intrinsic(name, return_type, [argument.type for argument in arguments])
        return self.builder.call(function, list(arguments))

    def inline_ptx(
        self,
        return_type: ir.Type,
        text: str,
        constraints: str,
        arguments: Sequence[ir.Value],
        side_effect: bool = False,
    ) -> ir.Value:
        """Inline PTX ``text``: operands ``$0, $1, ...``; constraints ``r`` (32-bit), ``l`` (64-bit), ``h``
        (16-bit), ``n`` (an immediate), ``=`` before an output."""
        signature = ir.FunctionType(return_type, [argument.type for argument in arguments])
        assembly = ir.InlineAsm(signature, text, constraints, side_effect=side_effect)
        return self.builder.call(assembly, list(arguments))

    def once(self, key: tuple, make: Callable[[], ir.Value]) -> ir.Value:
        """A value computed once in the entry block and reused (the thread's indices, say)."""
        if key not in self._cache:
            saved = self.builder
            self.builder = self._allocas
            try:
                self._cache[key] = make()
            finally:
                self.builder = saved
        return self._cache[key]

    def new_block(self, name: str) -> ir.Block:
        return self.function.append_basic_block(name)

    def finish(self) -> None:
        """End the function: the entry block falls through to the body, and the body returns."""
        self._allocas.branch(self.function.blocks[1])
        if not self.builder.block.is_terminated:
            self.builder.ret_void()


def _llvm_name(variable: Var) -> str:
    return variable.name.replace(".", "_")
