"""One-line AST mutants of a Python program: the edits PRLCoder's line labels come from.

PRLCoder (papers.md #57, "Process-Supervised Reinforcement Learning for Code Generation")
labels the lines of a passing program by editing one line at a time and running the tests: a
line whose edit breaks the program is where a bug would sit. The paper has a teacher model
rewrite each line; here the edits are classical mutation operators, applied to the AST so that
every mutant is a deliberate, syntactically valid change of exactly one line:

==========  =====================================================  =======================
operator    change                                                 example
==========  =====================================================  =======================
arith       swap a binary or augmented-assignment operator         ``a + b`` -> ``a - b``
compare     boundary shift or flip of a comparison                 ``i < n`` -> ``i <= n``
boolop      ``and`` <-> ``or``                                     ``a and b`` -> ``a or b``
constant    integer off by one (both ways), ``True`` <-> ``False``   ``s[1:]`` -> ``s[2:]``
negate      negate an ``if`` / ``while`` / ``elif`` / conditional  ``if c:`` -> ``if not c:``
            test (or drop its ``not``)
unary       drop a unary minus / ``~``                             ``-x`` -> ``x``
delete      replace a one-line simple statement by ``pass``        ``x += 1`` -> ``pass``
==========  =====================================================  =======================

Only nodes that start and end on one line are mutated, and the new line is the old one with the
node's own characters replaced by ``ast.unparse`` of the mutated node (parenthesised when the
bare text would parse differently). Each mutant is checked: the whole mutant must parse to
exactly the original tree with that one node replaced, and differ from the source in that line
only; candidates that fail the check are not emitted. Mutants are listed in a fixed order
(line, then breadth-first AST walk order, then operator), duplicates (same program text)
removed; ``max_per_line`` keeps a seeded random subset per line, so the result depends only on
the source, the seed and the cap.

>>> [(m.operator, m.mutated) for m in mutants("def f(a, b):\\n    return a + b\\n")]
[('delete', '    pass'), ('arith', '    return a - b')]
"""

from __future__ import annotations

import ast
import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass

OPERATORS = ("arith", "compare", "boolop", "constant", "negate", "unary", "delete")

_ARITH: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Div,),
    ast.Div: (ast.Mult,),
    ast.FloorDiv: (ast.Div,),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
    ast.LShift: (ast.RShift,),
    ast.RShift: (ast.LShift,),
    ast.BitAnd: (ast.BitOr,),
    ast.BitOr: (ast.BitAnd,),
    ast.BitXor: (ast.BitAnd,),
}
_COMPARE: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
_SIMPLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise)


@dataclass(frozen=True)
class Mutant:
    """A program with one line changed.

    Attributes:
        line: 0-based index of the changed line in ``source.split("\\n")``.
        operator: which operator made it (one of :data:`OPERATORS`).
        original / mutated: the line before and after.
        program: the whole mutant program.
    """

    line: int
    operator: str
    original: str
    mutated: str
    program: str


Edit = tuple[str, ast.AST]  # (operator, replacement node)


def _edits(node: ast.AST, parent: ast.AST | None) -> Iterator[Edit]:
    """The replacements of ``node`` each operator proposes, in :data:`OPERATORS` order."""
    if isinstance(node, ast.BinOp | ast.AugAssign):
        for op in _ARITH.get(type(node.op), ()):
            new = copy.deepcopy(node)
            new.op = op()
            yield "arith", new
    if isinstance(node, ast.Compare):
        for i, cmp in enumerate(node.ops):
            for alt in _COMPARE.get(type(cmp), ()):
                cmp_new = copy.deepcopy(node)
                cmp_new.ops[i] = alt()
                yield "compare", cmp_new
    if isinstance(node, ast.BoolOp):
        bool_new = copy.deepcopy(node)
        bool_new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield "boolop", bool_new
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            yield "constant", ast.Constant(not node.value)
        elif isinstance(node.value, int):
            yield "constant", ast.Constant(node.value + 1)
            if node.value > 0:  # 0 - 1 would be a UnaryOp, not a constant
                yield "constant", ast.Constant(node.value - 1)
    if isinstance(parent, ast.If | ast.While | ast.IfExp) and node is parent.test:
        expr = node
        assert isinstance(expr, ast.expr)
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
            yield "negate", copy.deepcopy(expr.operand)
        else:
            yield "negate", ast.UnaryOp(ast.Not(), copy.deepcopy(expr))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Invert):
        yield "unary", copy.deepcopy(node.operand)
    if isinstance(node, _SIMPLE) and not _is_docstring(node):
        yield "delete", ast.Pass()


def _is_docstring(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _replace(tree: ast.AST, target: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``target`` is in ``tree`` (identity match)."""
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is target:
                        value[i] = new
                        return
    raise AssertionError("node not found in its own tree")


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _candidates(source: str) -> Iterator[tuple[int, str, str, str]]:
    """``(line, operator, mutated line, program)`` of every checked edit, in walk order."""
    tree = ast.parse(source)
    lines = source.split("\n")
    parents = _parents(tree)
    nodes = list(ast.walk(tree))
    for k, node in enumerate(nodes):
        lineno = getattr(node, "lineno", None)
        if lineno is None or getattr(node, "end_lineno", None) != lineno:
            continue
        for operator, new in _edits(node, parents.get(id(node))):
            expected = copy.deepcopy(tree)
            _replace(expected, list(ast.walk(expected))[k], new)
            want = ast.dump(expected)
            raw = lines[lineno - 1].encode("utf-8")  # col offsets count UTF-8 bytes
            start, end = getattr(node, "col_offset", 0), getattr(node, "end_col_offset", None)
            assert isinstance(end, int)
            for text in (ast.unparse(new), f"({ast.unparse(new)})"):
                changed = (raw[:start] + text.encode("utf-8") + raw[end:]).decode("utf-8")
                program = "\n".join([*lines[: lineno - 1], changed, *lines[lineno:]])
                if changed != lines[lineno - 1] and _parses_to(program, want):
                    yield lineno - 1, operator, changed, program
                    break


def _parses_to(program: str, dump: str) -> bool:
    try:
        return ast.dump(ast.parse(program)) == dump
    except SyntaxError:
        return False


def mutants(source: str, seed: int = 0, max_per_line: int | None = None) -> list[Mutant]:
    """Every one-line mutant of ``source`` (see the module docstring), by line.

    Args:
        source: a Python program that parses (SyntaxError otherwise).
        seed: picks the subset of a line's mutants when ``max_per_line`` caps them.
        max_per_line: keep at most this many mutants per line (None: all).
    """
    if max_per_line is not None and max_per_line < 1:
        raise ValueError(f"max_per_line must be >= 1, got {max_per_line}")
    lines = source.split("\n")
    seen: set[str] = {source}
    by_line: dict[int, list[Mutant]] = {}
    for line, operator, changed, program in _candidates(source):
        if program not in seen:
            seen.add(program)
            by_line.setdefault(line, []).append(
                Mutant(line, operator, lines[line], changed, program)
            )
    out: list[Mutant] = []
    for line in sorted(by_line):
        found = by_line[line]
        if max_per_line is not None and len(found) > max_per_line:
            rng = random.Random(f"{seed}:{line}:{lines[line]}")
            keep = sorted(rng.sample(range(len(found)), max_per_line))
            found = [found[i] for i in keep]
        out += found
    return out
