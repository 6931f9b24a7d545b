"""Jinja2's sandbox, bounded in time, memory and nesting (pure).

Templates come from tenants (``POST /v1/templates``).  Jinja2's sandbox keeps
them away from Python's internals but bounds nothing: nested loops over
``range(99999)``, ``'x'|center(10**9)``, ``(10**64)**64``, strings doubled in
a ``namespace``, a macro calling itself, and Jinja2 runs filters on literal
arguments while *compiling*.  Here:

- **Compile** refuses what cannot be bounded, with a :class:`TemplateLimitError`
  naming the limit: a source longer than :attr:`Limits.source`, blocks or
  expressions nested deeper than Jinja2's parser and Python's compiler can
  take (:attr:`Limits.block_depth`, :attr:`Limits.expression_depth`),
  ``include``/``import``/``extends`` (there is nothing to load) and recursive
  loops.  No filter or test runs at compile time: each takes the render
  context, which is what stops Jinja2's constant folding.
- **Render** runs against a :class:`Budget` (a deadline, loop items over the
  whole render, call depth, characters produced).  Every loop item, call,
  filter, operator and output checks it, so a render stops within about one
  bounded step of its deadline.  Strings, lists and integers are measured
  *before* they are built (``*``, ``**``, ``+``, ``%``, ``center``,
  ``indent``, ``replace``, ``format``, ``join`` …), and values are measured
  before they are printed or compared, so a small structure that shares
  itself (a list holding itself twice, doubled 60 times) is refused instead
  of printed.

A blown budget raises :class:`BudgetExceeded` (a Jinja2 ``SecurityError``).
"""

from __future__ import annotations

import contextvars
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS
from jinja2.utils import Cycler, Joiner, Namespace, pass_context
from jinja2.visitor import NodeTransformer

__all__ = [
    "LIMITS",
    "BoundedSandbox",
    "Budget",
    "BudgetExceeded",
    "DeadlineExceeded",
    "Limits",
    "TemplateLimitError",
    "budget",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """What one template may cost.  An SMS is at most a few hundred characters:
    these are far above what a useful template needs, and far below harm."""

    #: Characters of template source.
    source: int = 8192
    #: Nesting of blocks (``for``, ``if``, ``macro``, ``call``, ``filter``, ``with``, ``set``).
    block_depth: int = 10
    #: Nesting of expressions (brackets, operators, filters, calls).
    expression_depth: int = 32
    #: Wall-clock time of one render, in seconds.
    seconds: float = 0.1
    #: Loop items in one render, all loops together (a loop nested in another counts each time).
    loop_items: int = 10_000
    #: Characters (or items) in any string, list or value a template builds or prints,
    #: and characters one render produces in all.
    text: int = 65_536
    #: Bits in any integer a template computes (4096 bits is about 1,233 digits).
    int_bits: int = 4096
    #: How deep macro and function calls may nest.
    call_depth: int = 32


LIMITS = Limits()


class TemplateLimitError(ValueError):
    """A template refused at compile time because it cannot be bounded; names the limit."""


class BudgetExceeded(SecurityError):
    """A render that went over one of its limits; the message names the limit."""


class DeadlineExceeded(BudgetExceeded):
    """A render that ran out of time (the one limit a longer time limit could lift)."""


class Budget:
    """What one render has spent; every guarded step charges it and checks the deadline."""

    __slots__ = ("_deadline", "_depth", "_loop_items", "_produced", "limits")

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self._deadline = time.monotonic() + limits.seconds
        self._loop_items = 0
        self._produced = 0
        self._depth = 0

    def tick(self) -> None:
        if time.monotonic() > self._deadline:
            raise DeadlineExceeded(
                f"the template ran longer than {self.limits.seconds * 1000:g} ms"
            )

    def loop_item(self) -> None:
        self._loop_items += 1
        if self._loop_items > self.limits.loop_items:
            raise BudgetExceeded(
                f"the template's loops ran more than {self.limits.loop_items} times"
            )
        self.tick()

    def produce(self, characters: int) -> None:
        self._produced += characters
        if self._produced > self.limits.text:
            raise BudgetExceeded(f"the template produced more than {self.limits.text} characters")

    def enter_call(self) -> None:
        self._depth += 1
        if self._depth > self.limits.call_depth:
            raise BudgetExceeded(f"calls nest deeper than {self.limits.call_depth}")
        self.tick()

    def leave_call(self) -> None:
        self._depth -= 1

    def within(self, size: int, what: str) -> None:
        """Refuse to build ``what`` of ``size`` characters or items when that is over the limit."""
        if size > self.limits.text:
            raise BudgetExceeded(f"{what} would exceed {self.limits.text} characters")


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "iwork_mc_template_budget", default=None
)


class budget:  # lower case: used as a context manager, like contextlib's
    """``with budget(limits): template.render(...)``: the budget of that render."""

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.spent = Budget(limits)
        self._token: contextvars.Token[Budget | None] | None = None

    def __enter__(self) -> Budget:
        self._token = _CURRENT.set(self.spent)
        return self.spent

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _CURRENT.reset(self._token)


def _current() -> Budget:
    # Outside a render (Jinja2 may evaluate constants while compiling) a fresh
    # budget still bounds the one step.
    return _CURRENT.get() or Budget()


# -- measuring values before they are built, printed or compared ------------------------


def _measure(value: object, spent: Budget) -> int:
    """About how many characters ``value`` prints as, counting shared parts each time;
    stops and raises as soon as that is over the limit (so the cost is bounded too)."""
    limit = spent.limits.text
    total = 0
    stack = [value]
    steps = 0
    while stack:
        item = stack.pop()
        steps += 1
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, range):
            total += len(item)
        elif isinstance(item, Namespace):
            # A namespace hides its dict from attribute access: this is where Jinja2 keeps it.
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
            total += 12
        elif isinstance(item, Mapping):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + len(item)
            if total <= limit:
                stack.extend(item)
        else:
            total += 16
        if total > limit:
            raise BudgetExceeded(f"a value larger than {limit} characters was used")
        if steps % 1024 == 0:
            spent.tick()
    return total


def _checked_result(value: Any, spent: Budget) -> Any:
    """A value some library code built: refused when over the limit (a last line of defence
    behind the checks made before building)."""
    if isinstance(value, str | bytes | list | tuple | dict) and len(value) > spent.limits.text:
        raise BudgetExceeded(f"a value larger than {spent.limits.text} characters was built")
    return value


def _bits_check(spent: Budget, bits: int) -> None:
    if bits > spent.limits.int_bits:
        raise BudgetExceeded(f"numbers larger than {spent.limits.int_bits} bits are not allowed")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_binop(spent: Budget, operator: str, left: Any, right: Any) -> None:
    sequence = (str, bytes, list, tuple)
    if operator == "+":
        if isinstance(left, sequence) and isinstance(right, sequence):
            spent.within(len(left) + len(right), "a joined value")
        elif _is_int(left) and _is_int(right):
            _bits_check(spent, max(left.bit_length(), right.bit_length()) + 1)
    elif operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, sequence) and _is_int(count):
                spent.within(len(seq) * count, "a repeated value")
        if _is_int(left) and _is_int(right):
            _bits_check(spent, left.bit_length() + right.bit_length())
    elif operator == "**":
        if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
            _bits_check(spent, left.bit_length() * right)
    elif operator == "%" and isinstance(left, str | bytes):
        text = left if isinstance(left, str) else left.decode("latin-1")
        _check_printf(spent, text, right)


# "%" conversions: optional (key), flags, width, precision, type.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def _formatted_within(spent: Budget, fmt: str, fields: int, widest: int, values: int) -> None:
    # Each field prints at most its width or all of its arguments (a mapping
    # argument may be printed by every field).
    spent.within(len(fmt) + fields * max(widest, values), "a formatted text")


def _check_printf(spent: Budget, fmt: str, args: Any) -> None:
    widest, fields = 0, 0
    for match in _PRINTF.finditer(fmt):
        fields += 1
        for number in match.groups():
            if number == "*":
                raise BudgetExceeded("'*' widths are not allowed in templates")
            if number:
                widest = max(widest, int(number))
    _formatted_within(spent, fmt, fields, widest, _measure(args, spent))


def _check_format(spent: Budget, fmt: str, values: int) -> None:
    widest, fields = 0, 0
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error when called
    for _text, field, spec, _conversion in parsed:
        if field is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise BudgetExceeded("nested fields in format specifications are not allowed")
        widest = max([widest, *(int(n) for n in _DIGITS.findall(spec or ""))])
    _formatted_within(spent, fmt, fields, widest, values)


def _width(spent: Budget, width: Any, what: str) -> None:
    if _is_int(width) and width > spent.limits.text:
        raise BudgetExceeded(f"{what} {width} is above {spent.limits.text}")


def _replaced_size(text: str, old: str, new: str, count: Any) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    if _is_int(count) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(0, len(new) - len(old))


def _bounded_items(spent: Budget, values: Iterable[Any]) -> list[Any]:
    items = list(islice(values, spent.limits.text + 1))
    spent.within(len(items), "a list")
    return items


# -- what str, bytes and int methods may build ------------------------------------------


def _check_method(spent: Budget, method: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Refuse a call of a str/bytes/int method that would build too much; the arguments
    to use (a ``join`` of an iterator gets a bounded list)."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, str | bytes):
        if name in ("center", "ljust", "rjust", "zfill") and args:
            _width(spent, args[0], f"a width of {name}()")
        elif name == "expandtabs":
            tab = args[0] if args and _is_int(args[0]) else 8
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            spent.within(len(owner) + tabs * max(tab, 0), "an expanded text")
        elif name == "replace" and len(args) >= 2:
            old, new = (str(a) if isinstance(owner, str) else a for a in args[:2])
            count = args[2] if len(args) > 2 else -1
            spent.within(_replaced_size(owner, old, new, count), "a replaced text")  # type: ignore[arg-type]
        elif name == "join" and args:
            items = _bounded_items(spent, args[0])
            spent.within(sum(_measure(i, spent) for i in items) + len(owner) * len(items), "a join")
            return (items, *args[1:])
        elif name == "translate":
            raise BudgetExceeded("translate() is not allowed in templates")
    elif _is_int(owner) and name == "to_bytes" and args:
        _width(spent, args[0], "a length of to_bytes()")
    return args


# -- filters and tests -------------------------------------------------------------------

Check = Callable[..., None]


def _center(spent: Budget, value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    _width(spent, width, "a width of center")


def _indent(spent: Budget, s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    unit = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    _width(spent, unit, "a width of indent")
    text = str(s)
    spent.within(len(text) + (text.count("\n") + 1) * unit, "an indented text")


def _wordwrap(spent: Budget, s: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    wrap = kwargs.get("wrapstring", args[1] if len(args) > 1 else None)
    spent.within(len(str(s)) * (1 + len(str(wrap or "\n"))), "a wrapped text")


def _format(spent: Budget, value: Any, *args: Any, **kwargs: Any) -> None:
    _check_printf(spent, str(value), kwargs or args)


def _replace(spent: Budget, s: Any, old: Any, new: Any, count: Any = None) -> None:
    spent.within(_replaced_size(str(s), str(old), str(new), count), "a replaced text")


def _batch(spent: Budget, value: Any, linecount: Any, *_: Any, **__: Any) -> None:
    _width(spent, linecount, "a batch size")


def _slice(spent: Budget, value: Any, slices: Any, *_: Any, **__: Any) -> None:
    _width(spent, slices, "a slice count")


def _sum(spent: Budget, iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, int | float):
        raise BudgetExceeded("sum adds numbers only")


#: Filters that can build more than their input, and what is checked first.
_FILTER_CHECKS: dict[str, Check] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "replace": _replace,
    "batch": _batch,
    "slice": _slice,
    "sum": _sum,
}
#: Filters for HTML or debugging, whose output an argument can multiply: not offered.
_LEFT_OUT = frozenset({"urlize", "xmlattr", "tojson", "pprint"})


def _call_with_pass_arg(
    func: Callable[..., Any], context: jinja2.runtime.Context, *args: Any, **kwargs: Any
) -> Any:
    pass_arg = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    if pass_arg == "context":
        return func(context, *args, **kwargs)
    if pass_arg == "eval_context":
        return func(context.eval_ctx, *args, **kwargs)
    if pass_arg == "environment":
        return func(context.environment, *args, **kwargs)
    return func(*args, **kwargs)


def _guarded(func: Callable[..., Any], check: Check | None = None) -> Callable[..., Any]:
    """``func`` (a filter or test) measuring its arguments and result, after ``check``.

    It takes the render context, so Jinja2 never runs it while compiling.
    """

    @pass_context
    def guarded(context: jinja2.runtime.Context, *args: Any, **kwargs: Any) -> Any:
        spent = _current()
        spent.tick()
        for value in (*args, *kwargs.values()):
            _measure(value, spent)
        if check is not None:
            check(spent, *args, **kwargs)
        return _checked_result(_call_with_pass_arg(func, context, *args, **kwargs), spent)

    return guarded


@pass_context
def _join(
    context: jinja2.runtime.Context, value: Iterable[Any], d: str = "", attribute: Any = None
) -> str:
    spent = _current()
    items = _bounded_items(spent, value)
    spent.within(len(items) * len(str(d)), "a join")
    joined: str = _call_with_pass_arg(FILTERS["join"], context, items, d, attribute)
    return joined


# -- internal filters the guard transform inserts (their names cannot be written in a template)

_LOOP, _EMIT, _CONCAT, _SIZED = "iwork-loop", "iwork-emit", "iwork-concat", "iwork-sized"


@pass_context
def _loop_items(context: jinja2.runtime.Context, iterable: Iterable[Any]) -> Iterator[Any]:
    spent = _current()
    for item in iterable:
        spent.loop_item()
        yield item


@pass_context
def _emit(context: jinja2.runtime.Context, value: Any) -> str:
    spent = _current()
    if not isinstance(value, str):
        _measure(value, spent)
    text = str(value)
    spent.produce(len(text))
    spent.tick()
    return text


@pass_context
def _concat(context: jinja2.runtime.Context, parts: tuple[Any, ...]) -> str:
    spent = _current()
    spent.within(sum(_measure(part, spent) for part in parts), "a joined text (~)")
    return "".join(str(part) for part in parts)


@pass_context
def _sized(context: jinja2.runtime.Context, value: Any) -> Any:
    _measure(value, _current())
    return value


def _internal(name: str, node: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Guard(NodeTransformer):
    """Routes loops, outputs, ``~``, comparisons and dict keys through the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _internal(_LOOP, cast(nodes.Expr, node.iter))
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_internal(_EMIT, child) for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _internal(_CONCAT, nodes.Tuple(node.nodes, "load", lineno=node.lineno))

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        # Comparing (or hashing) a structure that shares itself is exponential.
        self.generic_visit(node)
        node.expr = _internal(_SIZED, node.expr)
        for operand in node.ops:
            operand.expr = _internal(_SIZED, operand.expr)
        return node

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        for pair in node.items:
            pair.key = _internal(_SIZED, pair.key)
        return node


# -- compile-time refusals ---------------------------------------------------------------

_BLOCKS = (
    nodes.For, nodes.If, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.With,
    nodes.AssignBlock, nodes.Scope, nodes.ScopedEvalContextModifier, nodes.Block,
)  # fmt: skip
_LOADING = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def _check_tree(tree: nodes.Template, limits: Limits) -> None:
    """Refuse what cannot be bounded; the walk is iterative (the tree may be deep)."""
    stack: list[tuple[nodes.Node, int, int]] = [(tree, 0, 0)]
    while stack:
        node, blocks, expressions = stack.pop()
        if isinstance(node, _LOADING):
            raise TemplateLimitError(
                f"line {node.lineno}: include, import and extends are not available "
                "(a template stands alone)"
            )
        if isinstance(node, nodes.For) and node.recursive:
            raise TemplateLimitError(f"line {node.lineno}: recursive loops are not available")
        if blocks > limits.block_depth:
            raise TemplateLimitError(
                f"line {node.lineno}: blocks nest deeper than {limits.block_depth}"
            )
        if expressions > limits.expression_depth:
            raise TemplateLimitError(
                f"line {node.lineno}: expressions nest deeper than {limits.expression_depth}"
            )
        elifs = node.elif_ if isinstance(node, nodes.If) else []
        for child in node.iter_child_nodes():
            # An elif is a sibling of its if, not a block inside it.
            child_blocks = blocks + (isinstance(child, _BLOCKS) and not _is_elif(child, elifs))
            child_expressions = expressions + 1 if isinstance(child, nodes.Expr) else 0
            stack.append((child, child_blocks, child_expressions))


def _is_elif(node: nodes.Node, group: list[nodes.If]) -> bool:
    return any(node is member for member in group)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox (a template can change nothing, not even the event's
    data) with every render bounded by a :class:`Budget` and compile-time refusals."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, limits: Limits = LIMITS) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
        )
        self.limits = limits
        self.filters = {
            name: _guarded(func, _FILTER_CHECKS.get(name))
            for name, func in FILTERS.items()
            if name not in _LEFT_OUT
        }
        self.filters["join"] = _guarded(cast(Callable[..., Any], _join))
        self.filters.update({_LOOP: _loop_items, _EMIT: _emit, _CONCAT: _concat, _SIZED: _sized})
        self.tests = {
            name: _guarded(cast(Callable[..., Any], test)) for name, test in TESTS.items()
        }
        # Not lipsum (it builds text from its arguments); range is bounded by the loop budget.
        self.globals = {
            "range": self._range,
            "dict": dict,
            "cycler": Cycler,
            "joiner": Joiner,
            "namespace": Namespace,
        }

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        """Offer ``func`` as filter ``name``, guarded like the built-in ones."""
        self.filters[name] = _guarded(func)

    def _range(self, *args: int) -> range:
        numbers = range(*args)
        if len(numbers) > self.limits.loop_items:
            raise BudgetExceeded(f"a range longer than {self.limits.loop_items} is not allowed")
        return numbers

    def compile_bounded(self, source: str) -> jinja2.Template:
        """The compiled ``source``; raises :class:`TemplateLimitError` for what cannot be
        bounded and ``jinja2.TemplateSyntaxError`` for a syntax error."""
        if len(source) > self.limits.source:
            raise TemplateLimitError(f"the template is longer than {self.limits.source} characters")
        try:
            tree = self.parse(source)
        except RecursionError:
            raise TemplateLimitError(
                "the template nests too deeply (brackets, filters or blocks)"
            ) from None
        except (ValueError, OverflowError) as exc:
            # e.g. an integer literal longer than Python converts (4300 digits).
            raise TemplateLimitError(f"the template has an invalid literal: {exc}") from None
        _check_tree(tree, self.limits)
        guarded = _Guard().visit(tree)
        assert isinstance(guarded, nodes.Template)
        guarded.set_environment(self)
        try:
            return self.from_string(guarded)
        except (RecursionError, SyntaxError, MemoryError) as exc:
            raise TemplateLimitError(
                f"the template is too complex to compile ({type(exc).__name__})"
            ) from None

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        spent = _current()
        spent.tick()
        _check_binop(spent, operator, left, right)
        return super().call_binop(context, operator, left, right)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, tuple):
            _measure(argument, _current())
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            spent = _current()
            values = sum(_measure(v, spent) for v in (*args, *kwargs.values()))
            _check_format(spent, fmt, values)
            result: str = _checked_result(wrapped(*args, **kwargs), spent)
            return result

        return checked

    def call(
        __self,  # Jinja2's own spelling, so that a keyword argument named "self" passes
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        spent = _current()
        for value in (*args, *kwargs.values()):
            _measure(value, spent)
        args = _check_method(spent, __obj, args)
        spent.enter_call()
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            spent.leave_call()
        return _checked_result(result, spent)
