"""An HLS lint on the clang AST: what a Vitis HLS user checks by eye, run on every export without Vitis.

The export's ``top.cpp`` is parsed once with libclang (the ``libclang`` wheel, the ``hls`` extra) as the
C-simulation compiles it (``-x c++ -std=c++14 -I<export> -I<export>/include -I<ap_types>``). Only code of
the export's own files is checked (top.cpp, config.h, include/mtl_moe/*.h), never Xilinx's ap_types, and
code inside ``#ifndef __SYNTHESIS__`` blocks is skipped: synthesis never sees it. ``#pragma HLS`` lines
are read from the source text (clang drops them): a loop's pragmas are those between its header and the
end of its body that no inner loop encloses; a function's are those inside its body.

Each rule is one function (see :data:`RULES`). A line can opt out of one rule with a reason, as
``// lint: allow RULE <reason>``. What this cannot tell is what Vitis reports: achieved II, timing,
resources. ``python -m mtl_moe.hls_lint EXPORT [--json]`` exits 1 on findings, 2 if it cannot lint.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Functions the performance model (mtl_moe.perf) assumes overlap load, compute and store in; each must be a
# DATAFLOW region (the perf model imports this list so the two cannot drift apart).
OVERLAP_FUNCTIONS = ("linear_unit", "attention_core")
RAM_PORTS = 2  # a block RAM / URAM is true dual-port: two accesses (read or write) per cycle

_ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^="})
_WRITES = _ASSIGN | {"++", "--"}
_WIDE_KINDS = frozenset({"LONG", "ULONG", "LONGLONG", "ULONGLONG"})
_WIDE_NAME = re.compile(r"\b(long|u?int64_t|i64|u64)\b")
_ALLOW = re.compile(r"//\s*lint:\s*allow\s+([\w-]+)\s+\S")
_PRAGMA = re.compile(r"^\s*#\s*pragma\s+HLS\s+(\w+)(.*)$", re.I)
_COND = re.compile(r"^\s*#\s*(ifndef|ifdef|if|elif|else|endif)\b(.*)")
_KV = re.compile(r"(\w+)\s*=\s*([^\s=]+)")
_FUNC_KINDS = ("FUNCTION_DECL", "FUNCTION_TEMPLATE", "CXX_METHOD", "CONSTRUCTOR")
_LOOP_KINDS = ("FOR_STMT", "WHILE_STMT", "DO_STMT", "CXX_FOR_RANGE_STMT")
_CONTAINERS = ("NAMESPACE", "LINKAGE_SPEC", "UNEXPOSED_DECL")
_CASTS = ("CSTYLE_CAST_EXPR", "CXX_FUNCTIONAL_CAST_EXPR", "CXX_STATIC_CAST_EXPR")
_LITERALS = (
    "INTEGER_LITERAL",
    "CHARACTER_LITERAL",
    "FLOATING_LITERAL",
    "CXX_BOOL_LITERAL_EXPR",
    "CXX_UNARY_EXPR",
)  # CXX_UNARY_EXPR: sizeof / alignof
_ARRAYS = ("CONSTANTARRAY", "INCOMPLETEARRAY", "VARIABLEARRAY", "DEPENDENTSIZEDARRAY")
_SCOPES = ("NAMESPACE", "TRANSLATION_UNIT", "CLASS_DECL", "STRUCT_DECL", "CLASS_TEMPLATE", "UNION_DECL")


@dataclass(frozen=True)
class Finding:
    """One defect: where (relative to the export folder), which rule, and why it matters in hardware."""

    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}"


class LintError(Exception):
    """The export cannot be linted at all (no folder, no libclang, clang cannot parse it)."""


@dataclass
class Pragma:
    """One ``#pragma HLS`` line: its directive (upper case), ``key=value`` options and bare flags."""

    file: str
    line: int
    directive: str
    opts: dict[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()


# ---- source text: pragmas, #ifndef __SYNTHESIS__ lines, allow comments ---------------------------------
def _first_branch(directive: str, cond: str, sim_macros: frozenset[str]) -> str:
    """What the first branch of an #if is: 'sim' (C-simulation only; its #else is synthesis only),
    'sim+' (C-simulation only, the #else either), 'syn' (synthesis only), or 'other'.

    A branch is C-simulation only if it needs ``!defined(__SYNTHESIS__)`` or a macro that only
    C-simulation code defines (``#if !defined(__SYNTHESIS__) && ...`` / ``#define FAST_CSIM``)."""
    c = re.sub(r"\s+", "", cond.split("//")[0])
    if directive in ("ifdef", "ifndef"):
        c = ("!" if directive == "ifndef" else "") + f"defined({c})"
    terms = [re.sub(r"^(!?)defined\(?(\w+)\)?$", r"\1\2", t) for t in c.split("&&")] if "||" not in c else []
    sim = any(t == "!__SYNTHESIS__" or t in sim_macros for t in terms)
    if sim:
        return "sim" if len(terms) == 1 else "sim+"
    return "syn" if terms == ["__SYNTHESIS__"] else "other"


def _simulation_only_lines(lines: Sequence[str], sim_macros: frozenset[str] = frozenset()) -> set[int]:
    """Line numbers synthesis never sees: ``#ifndef __SYNTHESIS__`` branches, ``#ifdef``'s ``#else``."""
    hidden: set[int] = set()
    stack: list[list[Any]] = []  # [state of the first branch, in a later branch?]
    later_state = {"sim": "syn", "syn": "sim"}
    for n, text in enumerate(lines, 1):
        m = _COND.match(text)
        d = m.group(1) if m else ""
        if d in ("ifndef", "ifdef", "if"):
            stack.append([_first_branch(d, m.group(2), sim_macros), False])
        elif d in ("else", "elif") and stack:
            stack[-1][1] = True
        if any((later_state.get(s, "other") if later else s) in ("sim", "sim+") for s, later in stack):
            hidden.add(n)
        if d == "endif" and stack:
            stack.pop()
    return hidden


def _sim_macros(texts: Iterable[Sequence[str]]) -> frozenset[str]:
    """Macros #defined only on C-simulation-only lines (so ``#ifdef`` of one is C-simulation only)."""
    sim, syn = set(), set()
    for lines in texts:
        hidden = _simulation_only_lines(lines)
        for n, t in enumerate(lines, 1):
            m = re.match(r"^\s*#\s*define\s+(\w+)", t)
            if m:
                (sim if n in hidden else syn).add(m.group(1))
    return frozenset(sim - syn)


def _pragma(rel: str, n: int, text: str) -> Pragma | None:
    """Parse one source line as ``#pragma HLS DIRECTIVE key=value flag ...`` (case-insensitive)."""
    m = _PRAGMA.match(text)
    if m is None:
        return None
    rest = m.group(2).split("//")[0]
    opts = {k.lower(): v for k, v in _KV.findall(rest)}
    flags = frozenset(w.lower() for w in re.findall(r"\w+", _KV.sub(" ", rest)))
    return Pragma(rel, n, m.group(1).upper(), opts, flags)


def _continued(lines: Sequence[str], i: int) -> str:
    """Line i with the lines it continues into (a trailing backslash) appended."""
    out = lines[i]
    while out.endswith("\\") and i + 1 < len(lines):
        i += 1
        out = out[:-1] + " " + lines[i]
    return out


class _Source:
    """One of the export's own files: its pragmas, its simulation-only lines and its allow comments."""

    def __init__(self, lines: Sequence[str], rel: str, sim_macros: frozenset[str]):
        self.rel = rel
        self.hidden = _simulation_only_lines(lines, sim_macros)
        logical = [_continued(lines, i) for i in range(len(lines))]  # a pragma may go on with a '\\'
        self.pragmas = [
            p for n, t in enumerate(logical, 1) if n not in self.hidden and (p := _pragma(rel, n, t))
        ]
        self.allow = {(n, m.group(1)) for n, t in enumerate(lines, 1) for m in _ALLOW.finditer(t)}


def _own_sources(root: Path) -> dict[str, _Source]:
    """The export's own files by real path: top.cpp, config.h and the kernel headers (not ap_types)."""
    paths = [root / "top.cpp", root / "config.h", *sorted((root / "include" / "mtl_moe").rglob("*.h"))]
    texts = {p: p.read_text(errors="replace").splitlines() for p in paths if p.is_file()}
    macros = _sim_macros(texts.values())
    return {os.path.realpath(p): _Source(t, p.relative_to(root).as_posix(), macros) for p, t in texts.items()}


# ---- parsing -------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _builtin_includes() -> tuple[str, ...]:
    """The compiler's own headers (stddef.h, ...): the libclang wheel ships none, g++ has them."""
    cxx = shutil.which("g++") or shutil.which("gcc")
    if cxx is None:
        return ()
    out = subprocess.run([cxx, "-print-file-name=include"], capture_output=True, text=True).stdout.strip()
    return (f"-isystem{out}",) if out and (Path(out) / "stddef.h").is_file() else ()


def _ap_types() -> Path:
    """Xilinx's ap_types headers, found as the C-simulation finds them."""
    from mtl_moe.csim import ap_types_dir

    try:
        return ap_types_dir()
    except FileNotFoundError as e:
        raise LintError(str(e)) from e


def _parse(root: Path) -> Any:
    """Parse the export's top.cpp once; clang errors are a LintError (a lint of half an AST would lie)."""
    try:
        from clang import cindex

        index = cindex.Index.create()
    except Exception as e:  # ImportError, or LibclangError when the shared library cannot load
        raise LintError(
            f"libclang is not usable ({e}): pip install 'libclang==18.1.1' (the hls extra)"
        ) from e
    args = [
        "-x",
        "c++",
        "-std=c++14",
        f"-I{root}",
        f"-I{root / 'include'}",
        f"-I{_ap_types()}",
        *_builtin_includes(),
    ]
    try:
        tu = index.parse(str(root / "top.cpp"), args=args)
    except cindex.TranslationUnitLoadError as e:
        raise LintError(f"clang cannot load {root / 'top.cpp'}: {e}") from e
    errors = [d for d in tu.diagnostics if d.severity >= cindex.Diagnostic.Error]
    if errors:
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise LintError(f"clang cannot parse {root / 'top.cpp'}: {errors[0]}{more}")
    return tu


# ---- small AST helpers ---------------------------------------------------------------------------------
def _kind(c: Any) -> str:
    return c.kind.name


@functools.cache
def _kids(c: Any) -> tuple[Any, ...]:
    """A cursor's children, asked of libclang once per lint (cleared by lint())."""
    return tuple(c.get_children())


_TIGHT_AFTER = frozenset({"", "(", "[", ".", "::", "->", "!", "~"})
_TIGHT_BEFORE = frozenset({")", "]", ",", ";", ".", "::", "->", "++", "--"})


def _text(c: Any, upto: int | None = None) -> str:
    """The source text of a cursor (up to an offset), re-spaced from its tokens for messages."""
    out, prev = "", ""
    for t in c.get_tokens():
        if upto is not None and t.extent.start.offset > upto:
            break
        s = t.spelling
        call = (
            s in ("(", "[")
            and (prev[-1:].isalnum() or prev[-1:] == "_" or prev in (")", "]", ">"))
            and prev not in ("for", "if", "while", "switch", "return")
        )
        out += s if prev in _TIGHT_AFTER or s in _TIGHT_BEFORE or call else " " + s
        prev = s
    return out


def _is_callee(c: Any) -> bool:
    """Whether a child of a call names the called operator/function rather than being an operand."""
    return (
        _kind(c) in ("DECL_REF_EXPR", "UNEXPOSED_EXPR", "MEMBER_REF_EXPR", "OVERLOADED_DECL_REF")
        and _kind(c.type) in ("FUNCTIONPROTO", "POINTER", "OVERLOAD", "DEPENDENT", "INVALID")
        and _name(c).startswith("operator")
    )


def _name(c: Any) -> str:
    if c.spelling:
        return c.spelling
    r = c.referenced
    return r.spelling if r is not None else ""


def _strip(c: Any) -> Any:
    """Skip the implicit casts, parentheses and converting constructors clang wraps around an expression."""
    while True:
        k = _kids(c)
        if len(k) != 1:
            return c
        kind, r = _kind(c), c.referenced
        ctor = kind == "CALL_EXPR" and (
            (r is not None and _kind(r) == "CONSTRUCTOR")
            or (
                r is None
                and not c.spelling
                and _kind(k[0]) not in ("DECL_REF_EXPR", "OVERLOADED_DECL_REF", "MEMBER_REF_EXPR")
            )
        )
        if kind not in ("UNEXPOSED_EXPR", "PAREN_EXPR") and not ctor:
            return c
        c = k[0]


def _unary_token(c: Any, operand: Any) -> str:
    toks = list(c.get_tokens())
    if not toks:
        return ""
    first = toks[0]
    return first.spelling if first.extent.start.offset < operand.extent.start.offset else toks[-1].spelling


@functools.cache
def _operator(c: Any) -> tuple[str, Sequence[Any]] | None:
    """(spelling, operands) of a built-in or overloaded unary/binary operator expression, else None."""
    kind, k = _kind(c), _kids(c)
    if kind in ("BINARY_OPERATOR", "COMPOUND_ASSIGNMENT_OPERATOR") and len(k) == 2:
        end = k[0].extent.end.offset
        op = next((t.spelling for t in c.get_tokens() if t.extent.start.offset >= end), "")
        return op, k
    if kind == "UNARY_OPERATOR" and len(k) == 1:
        return _unary_token(c, k[0]), k
    if kind != "CALL_EXPR":
        return None
    callee = [x for x in k if _is_callee(x)]
    if len(callee) != 1 or not 1 <= len(k) - 1 <= 2:
        return None
    operands = [x for x in k if x != callee[0]]
    if _kind(callee[0]) == "MEMBER_REF_EXPR":
        operands = [*_kids(callee[0])[:1], *operands]
    return _name(callee[0])[len("operator") :].strip(), operands


def _init(v: Any) -> Any | None:
    """The initialiser expression of a variable declaration, or None."""
    depth, at = 0, None
    for t in v.get_tokens():
        if t.extent.start.offset <= v.location.offset:
            continue
        s = t.spelling
        depth += (s == "[") - (s == "]")
        if depth == 0 and s in ("=", "{", "("):
            at = t.extent.start.offset
            break
    if at is None:
        return None
    exprs = [c for c in _kids(v) if c.kind.is_expression() and c.extent.end.offset > at]
    return exprs[-1] if exprs else None


def _int_literal(c: Any) -> int | None:
    toks = list(c.get_tokens())
    s = re.sub(r"[uUlL]+$", "", toks[0].spelling.replace("'", "")) if toks else ""
    try:
        return int(s, 8) if len(s) > 1 and s[0] == "0" and s[1] not in "xXbB" else int(s, 0)
    except ValueError:
        return None


def _apply(op: str, v: list[int]) -> int | None:
    """C integer semantics of an operator on constants (truncating division), None where undefined."""
    if len(v) == 1:
        return {"-": -v[0], "+": v[0], "!": int(not v[0]), "~": ~v[0]}.get(op)
    a, b = v
    if op in ("/", "%"):
        if b == 0:
            return None
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return q if op == "/" else a - q * b
    if op in ("<<", ">>") and not 0 <= b < 128:
        return None
    table: dict[str, Callable[[int, int], int]] = {
        "+": lambda x, y: x + y,
        "-": lambda x, y: x - y,
        "*": lambda x, y: x * y,
        "<<": lambda x, y: x << y,
        ">>": lambda x, y: x >> y,
        "&": lambda x, y: x & y,
        "|": lambda x, y: x | y,
        "^": lambda x, y: x ^ y,
        "<": lambda x, y: int(x < y),
        "<=": lambda x, y: int(x <= y),
        ">": lambda x, y: int(x > y),
        ">=": lambda x, y: int(x >= y),
        "==": lambda x, y: int(x == y),
        "!=": lambda x, y: int(x != y),
        "&&": lambda x, y: int(bool(x and y)),
        "||": lambda x, y: int(bool(x or y)),
    }
    return table[op](a, b) if op in table else None


def _elements(t: Any) -> Any:
    """The element type under any arrays, pointers and references of a (canonical) type."""
    t = t.get_canonical()
    while True:
        if _kind(t) in _ARRAYS:
            t = t.element_type
        elif _kind(t) in ("POINTER", "LVALUEREFERENCE", "RVALUEREFERENCE"):
            t = t.get_pointee()
        else:
            return t


def _is_wide(t: Any) -> bool:
    """Whether a type is (an array of / a pointer to) a 64-bit C integer."""
    e = _elements(t)
    if _kind(e) in _WIDE_KINDS:
        return True
    return _kind(e) in ("UNEXPOSED", "DEPENDENT", "INVALID") and bool(_WIDE_NAME.search(t.spelling))


def _dims(t: Any) -> list[int | None]:
    """Array dimensions of a declaration's type (a pointer counts as one dimension of unknown size)."""
    dims: list[int | None] = []
    t = t.get_canonical()
    while True:
        if _kind(t) == "CONSTANTARRAY":
            dims.append(t.get_array_size())
        elif _kind(t) in _ARRAYS or (_kind(t) == "POINTER" and not dims):
            dims.append(None)
        else:
            return dims
        t = t.element_type if _kind(t) in _ARRAYS else t.get_pointee()


def _bits(t: Any) -> int | None:
    """Bits per element of a type: ap_[u]int/ap_[u]fixed<W,...>, hls::vector<T, N>, else 8 * sizeof."""
    c = t.get_canonical()
    m = re.match(r"^(?:const\s+)?(?:hls::)?vector<(.*),\s*(\d+)\s*>$", c.spelling)
    if m and c.get_num_template_arguments() > 0:
        inner = _bits(c.get_template_argument_type(0))
        return inner * int(m.group(2)) if inner else None
    m = re.search(r"\bap_u?(?:int|fixed)(?:_base)?<\s*(\d+)", c.spelling)
    if m:
        return int(m.group(1))
    size = c.get_size()
    return size * 8 if size > 0 else None


@functools.lru_cache(maxsize=1)
def _evaluator() -> Callable[[Any], int | None]:
    """libclang's constant evaluator (clang_Cursor_Evaluate: in the library, not in its Python binding)."""
    from clang.cindex import Cursor, conf

    lib = conf.lib
    lib.clang_Cursor_Evaluate.argtypes, lib.clang_Cursor_Evaluate.restype = [Cursor], ctypes.c_void_p
    lib.clang_EvalResult_getKind.argtypes, lib.clang_EvalResult_getKind.restype = (
        [ctypes.c_void_p],
        ctypes.c_int,
    )
    lib.clang_EvalResult_getAsLongLong.argtypes = [ctypes.c_void_p]
    lib.clang_EvalResult_getAsLongLong.restype = ctypes.c_longlong
    lib.clang_EvalResult_dispose.argtypes = [ctypes.c_void_p]

    def evaluate(c: Any) -> int | None:
        r = lib.clang_Cursor_Evaluate(c)
        if not r:
            return None
        try:
            return (
                int(lib.clang_EvalResult_getAsLongLong(r)) if lib.clang_EvalResult_getKind(r) == 1 else None
            )
        finally:
            lib.clang_EvalResult_dispose(r)

    return evaluate


def _prod(xs: Iterable[float]) -> float:
    return math.prod(xs, start=1)


@dataclass
class _For:
    """The parts of a loop: the loop variable's declaration, init value, condition, increment, body."""

    node: Any
    header: str = ""
    var: Any | None = None
    start: Any | None = None
    cond: Any | None = None
    inc: Any | None = None
    body: Any | None = None


def _for_parts(c: Any) -> _For:
    """Split a loop into its parts (a for's header by its top-level ';', since clang omits empty parts)."""
    k = _kids(c)
    if _kind(c) != "FOR_STMT":
        return _For(c, body=k[0] if _kind(c) == "DO_STMT" else k[-1])
    seps, depth = [], 0
    for t in c.get_tokens():
        depth += (t.spelling == "(") - (t.spelling == ")")
        if (depth == 1 and t.spelling == ";") or (depth == 0 and t.spelling == ")"):
            seps.append(t.extent.start.offset)
        if len(seps) == 3:
            break
    loop = _For(c, _text(c, seps[-1]) if seps else "for", body=k[-1])
    for ch in k[:-1]:
        slot = sum(ch.extent.start.offset > s for s in seps)
        if slot == 0:
            loop.var, loop.start = _loop_var(ch)
        elif slot == 1:
            loop.cond = ch
        elif slot == 2:
            loop.inc = ch
    return loop


def _loop_var(init: Any) -> tuple[Any | None, Any | None]:
    """(declaration, initial value) of a for loop's variable from its init statement."""
    if _kind(init) == "DECL_STMT":
        v = next((x for x in _kids(init) if _kind(x) == "VAR_DECL"), None)
        return v, (_init(v) if v is not None else None)
    op = _operator(init)
    if op and op[0] == "=":
        lhs = _strip(op[1][0])
        return (lhs.referenced if _kind(lhs) == "DECL_REF_EXPR" else None), op[1][1]
    return None, None


def _count(start: int, op: str, bound: int, step: int) -> int | None:
    """Trip count of ``for (i = start; i OP bound; i += step)``, None if not a counted loop."""
    if step > 0 and op in ("<", "<="):
        return max(0, -(-(bound - start + (op == "<=")) // step))
    if step < 0 and op in (">", ">="):
        return max(0, -(-(start - bound + (op == ">=")) // -step))
    if step != 0 and op == "!=" and (bound - start) % step == 0 and (bound - start) // step >= 0:
        return (bound - start) // step
    return None


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "!=": "!="}


@dataclass
class _Ctx:
    """Where an access sits: the pipelined loop, the inner loops unrolled under it, their trip counts."""

    loop: Any
    unrolled: tuple[tuple[Any, tuple[int, ...], Any], ...] = ()  # (variable, its values, loop)
    written: frozenset[Any] = frozenset()
    stack: tuple[Any, ...] = ()  # the functions inlined so far, innermost last


# ---- the parsed export ---------------------------------------------------------------------------------
class _Export:
    """An export parsed once: its own files and pragmas, and the AST cursors that are its code."""

    def __init__(self, root: Path):
        self.root = root
        self.sources = _own_sources(root)
        self.tu = _parse(root)
        self._file: dict[str, _Source | None] = {}
        self._at: dict[Any, tuple[_Source | None, int]] = {}
        self._memo: dict[Any, Any] = {}
        self.pragmas = [p for s in self.sources.values() for p in s.pragmas]
        self.nodes = [n for d in self._decls(self.tu.cursor) for n in self.walk(d)]
        self.functions = [n for n in self.nodes if _kind(n) in _FUNC_KINDS and n.is_definition()]
        self.defined = set(self.functions)
        self.loops = [_for_parts(n) for n in self.nodes if _kind(n) in _LOOP_KINDS]
        self.loop_vars = {lp.var for lp in self.loops if lp.var is not None}
        self.calls = self._call_sites()
        self.maxi = {p.opts.get("port", "") for p in self.pragmas if p.file == "top.cpp" and _is_maxi(p)}

    def _where(self, c: Any) -> tuple[_Source | None, int]:
        """(own file or None, line) of a cursor, asked of libclang once per cursor."""
        got = self._at.get(c)
        if got is None:
            loc = c.location
            f = loc.file
            if f is not None and f.name not in self._file:
                self._file[f.name] = self.sources.get(os.path.realpath(f.name))
            got = self._at[c] = (self._file[f.name] if f is not None else None, loc.line)
        return got

    def source(self, c: Any) -> _Source | None:
        """The own file a cursor is in, or None (ap_types, system headers, no location)."""
        return self._where(c)[0]

    def visible(self, c: Any) -> bool:
        """Whether a cursor is the export's own code that synthesis sees."""
        src, line = self._where(c)
        return src is not None and line not in src.hidden

    def walk(self, c: Any) -> Iterator[Any]:
        """c and everything below it that is visible (a simulation-only subtree is skipped whole)."""
        stack = [c]
        while stack:
            n = stack.pop()
            if self.visible(n):
                yield n
                stack.extend(reversed(_kids(n)))

    def _decls(self, c: Any) -> Iterator[Any]:
        """The export's own top-level declarations, looking into namespaces and extern "C" blocks."""
        for ch in c.get_children():
            if self.source(ch) is None:
                continue
            if _kind(ch) in _CONTAINERS:
                yield from self._decls(ch)
            else:
                yield ch

    def finding(self, at: Any, rule: str, message: str) -> Finding:
        """A finding at a cursor or a pragma."""
        if isinstance(at, Pragma):
            return Finding(at.file, at.line, rule, message)
        src = self.source(at)
        return Finding(src.rel if src else "top.cpp", at.location.line, rule, message)

    def allowed(self, f: Finding) -> bool:
        """Whether the finding's line carries ``// lint: allow <rule> <reason>``."""
        return any(s.rel == f.file and (f.line, f.rule) in s.allow for s in self.sources.values())

    def _call_sites(self) -> dict[str, list[list[Any]]]:
        """Arguments of every call in the export's code, by the called function's name."""
        calls: dict[str, list[list[Any]]] = {}
        for n in self.nodes:
            k = _kids(n)
            if _kind(n) != "CALL_EXPR" or not k or _operator(n) is not None:
                continue
            name = _called_name(n)
            if name:
                calls.setdefault(name, []).append(list(k[1:]))
        return calls

    # ---- compile-time constants ----
    def is_const(self, e: Any, ignore: Any | None = None) -> bool:
        """Whether an expression is fixed at compile time: literals, enumerators, template parameters,
        const/constexpr variables with constant initialisers, and operators on those (``ignore``: a
        variable to treat as constant, the loop variable in a loop header)."""
        if e.kind.is_expression() and _evaluator()(e) is not None:
            return True
        e = _strip(e)
        kind = _kind(e)
        if kind in _LITERALS:
            return True
        if kind == "DECL_REF_EXPR":
            return self._const_ref(e, ignore)
        if kind == "MEMBER_REF_EXPR":
            r = e.referenced
            return r is not None and _kind(r) == "VAR_DECL" and self._const_var(r)
        if (
            kind == "CALL_EXPR"
            and _operator(e) is None
            and not (e.referenced is not None and _kind(e.referenced) == "CONSTRUCTOR")
        ):
            return False
        return all(self.is_const(x, ignore) for x in _kids(e) if x.kind.is_expression())

    def _const_ref(self, e: Any, ignore: Any | None) -> bool:
        r = e.referenced
        if r is None:  # a dependent name (IN::W) or a substituted template parameter: compile-time
            return True
        if ignore is not None and r == ignore:
            return True
        kind = _kind(r)
        if kind == "VAR_DECL":
            return self._const_var(r)
        return kind in (
            "ENUM_CONSTANT_DECL",
            "TEMPLATE_NON_TYPE_PARAMETER",
            "FUNCTION_DECL",
            "CXX_METHOD",
            "FUNCTION_TEMPLATE",
            "OVERLOADED_DECL_REF",
            "CONVERSION_FUNCTION",
        )

    def _const_var(self, v: Any) -> bool:
        """A const/constexpr variable whose initialiser is itself constant (memoised, cycle-safe)."""
        key = ("const", v)
        if key not in self._memo:
            self._memo[key] = False
            t = v.type
            while _kind(t.get_canonical()) in _ARRAYS:
                t = t.get_canonical().element_type
            const = t.is_const_qualified() or any(x.spelling == "constexpr" for x in v.get_tokens())
            init = _init(v) if const else None
            self._memo[key] = init is not None and self.is_const(init)
        return self._memo[key]

    def value(self, e: Any) -> int | None:
        """The integer value of a constant expression: clang's, else folded here (templates), else None."""
        key = ("value", e)
        if key not in self._memo:
            got = _evaluator()(e) if e.kind.is_expression() else None
            self._memo[key] = got if got is not None else self._fold(e)
        return self._memo[key]

    def _fold(self, e: Any) -> int | None:
        """Fold what clang cannot evaluate (dependent code) from literals, constants and operators."""
        e = _strip(e)
        kind, k = _kind(e), _kids(e)
        if kind == "INTEGER_LITERAL":
            return _int_literal(e)
        if kind == "CXX_BOOL_LITERAL_EXPR":
            return int(_text(e) == "true")
        if kind == "DECL_REF_EXPR":
            r = e.referenced
            if r is not None and _kind(r) == "ENUM_CONSTANT_DECL":
                return r.enum_value
            return self._var_value(r) if r is not None and _kind(r) == "VAR_DECL" else None
        if kind in _CASTS and k:
            return self.value(k[-1])
        if kind == "CONDITIONAL_OPERATOR" and len(k) == 3:
            c = self.value(k[0])
            return None if c is None else self.value(k[1] if c else k[2])
        op = _operator(e)
        if op is None:
            return None
        vals = [self.value(x) for x in op[1]]
        return None if any(v is None for v in vals) else _apply(op[0], vals)  # type: ignore[arg-type]

    def _var_value(self, v: Any) -> int | None:
        key = ("var value", v)
        if key not in self._memo:
            self._memo[key] = None
            init = _init(v) if self._const_var(v) else None
            self._memo[key] = self.value(init) if init is not None else None
        return self._memo[key]

    # ---- loops and pragmas ----
    def trip(self, loop: _For) -> int | None:
        """Trip count of a counted for loop with constant start, bound and step, else None."""
        got = self.iterations(loop)
        return None if got is None else len(got)

    def iterations(self, loop: _For) -> list[int] | None:
        """The values the variable of a counted for loop takes (constant start, bound, step), else None."""
        if loop.var is None or loop.start is None or loop.cond is None or loop.inc is None:
            return None
        cmp, step = _operator(_strip(loop.cond)), _operator(_strip(loop.inc))
        if cmp is None or step is None or len(cmp[1]) != 2:
            return None
        op, (a, b) = cmp
        if self._is_var(b, loop.var):
            op, a, b = _FLIP.get(op, ""), b, a
        if not self._is_var(a, loop.var):
            return None
        by = {"++": 1, "--": -1}.get(step[0])
        if by is None and step[0] in ("+=", "-=") and len(step[1]) == 2:
            d = self.value(step[1][1])
            by = None if d is None else (d if step[0] == "+=" else -d)
        start, bound = self.value(loop.start), self.value(b)
        n = None if None in (by, start, bound) else _count(start, op, bound, by)  # type: ignore[arg-type]
        return None if n is None else [start + i * by for i in range(n)]  # type: ignore[operator]

    @staticmethod
    def _is_var(e: Any, var: Any) -> bool:
        e = _strip(e)
        return _kind(e) == "DECL_REF_EXPR" and e.referenced is not None and e.referenced == var

    def loop_pragmas(self, loop: _For) -> list[Pragma]:
        """The pragmas of a loop: lines within it (header to end of body) that no inner loop encloses."""
        src, n = self.source(loop.node), loop.node
        if src is None or loop.body is None:
            return []
        inner = [
            (x.extent.start.line, x.extent.end.line) for x in self.walk(loop.body) if _kind(x) in _LOOP_KINDS
        ]
        return [
            p
            for p in src.pragmas
            if n.extent.start.line <= p.line <= n.extent.end.line
            and not any(a <= p.line <= b for a, b in inner)
        ]

    def pipelined(self, loop: _For) -> bool:
        return any(p.directive == "PIPELINE" and "off" not in p.flags for p in self.loop_pragmas(loop))

    def function_of(self, c: Any) -> Any | None:
        """The function definition whose body contains a cursor (None at namespace scope)."""
        src, off = self.source(c), c.extent.start.offset
        return next(
            (
                f
                for f in self.functions
                if self.source(f) is src and f.extent.start.offset <= off <= f.extent.end.offset
            ),
            None,
        )

    def pragma_int(self, text: str) -> int:
        """A pragma's numeric option: a literal or the name of a constant of the export (else 1)."""
        if re.fullmatch(r"\d+", text):
            return int(text)
        if "names" not in self._memo:
            self._memo["names"] = {n.spelling: n for n in self.nodes if _kind(n) == "VAR_DECL"}
        v = self._memo["names"].get(text.split("::")[-1])
        got = self._var_value(v) if v is not None else None
        return got if got is not None and got > 0 else 1

    def function_pragmas(self, f: Any) -> list[Pragma]:
        src = self.source(f)
        return [p for p in (src.pragmas if src else []) if f.extent.start.line <= p.line <= f.extent.end.line]


def _is_maxi(p: Pragma) -> bool:
    return p.directive == "INTERFACE" and ("m_axi" in p.flags or p.opts.get("mode", "").lower() == "m_axi")


# ---- rule: array-ports ---------------------------------------------------------------------------------
def _array_ports(ex: _Export) -> Iterator[Finding]:
    """Per pipelined loop, accesses per array per iteration (inner loops unrolled) within its ports."""
    for loop in ex.loops:
        if loop.body is None or not ex.pipelined(loop):
            continue
        written = frozenset(_writes(ex, loop.body))
        sites: dict[tuple[Any, ...], int] = {}
        registers: dict[Any, bool] = {}
        _collect(ex, loop.body, _Ctx(loop.node, (), written), "r", sites, registers)
        per: dict[Any, list[int]] = {}
        for key, count in sites.items():
            per.setdefault(key[0], [0, 0])[key[1] == "w"] += count
        for decl, (reads, writes) in per.items():
            if registers.get(decl):
                continue  # local to the iteration, constant indices once unrolled: registers
            allowed, how = _allowed(ex, decl, 0, frozenset())
            if reads + writes > allowed:
                yield ex.finding(
                    loop.node,
                    "array-ports",
                    (
                        f"`{decl.spelling}`: {reads} reads + {writes} writes per pipelined iteration, but "
                        f"its storage ({how}) allows {allowed:g}, so II >= "
                        f"{math.ceil((reads + writes) / allowed)}: partition "
                        f"it or store a row as one wide word"
                    ),
                )


def _writes(ex: _Export, body: Any) -> Iterator[Any]:
    """Variables assigned anywhere in a statement."""
    for n in ex.walk(body):
        op = _operator(n)
        if op and op[0] in _WRITES:
            t = _strip(op[1][0])
            if _kind(t) == "DECL_REF_EXPR" and t.referenced is not None:
                yield t.referenced


def _collect(ex: _Export, n: Any, ctx: _Ctx, mode: str, sites: dict, registers: dict) -> None:
    """Record the array accesses under n, multiplied by the trip counts of the loops unrolled around them."""
    if not ex.visible(n):
        return
    kind = _kind(n)
    if kind in _LOOP_KINDS:
        inner = _for_parts(n)
        values = ex.iterations(inner) if kind == "FOR_STMT" else None
        unrolled = ctx.unrolled + ((inner.var, tuple(values), n),) if values else ctx.unrolled
        _collect(ex, inner.body, _Ctx(ctx.loop, unrolled, ctx.written, ctx.stack), "r", sites, registers)
        return
    op = _operator(n)
    if op and op[0] in _WRITES:
        _collect(ex, op[1][0], ctx, "w" if op[0] == "=" else "rw", sites, registers)
        for x in op[1][1:]:
            _collect(ex, x, ctx, "r", sites, registers)
        return
    if kind == "ARRAY_SUBSCRIPT_EXPR" and _kind(n.type.get_canonical()) not in _ARRAYS:
        _record(ex, n, ctx, mode, sites, registers)
        return
    callee = _callee_definition(ex, n) if kind == "CALL_EXPR" and len(ctx.stack) < 4 else None
    if callee is not None and callee not in ctx.stack:
        _inline(ex, n, callee, ctx, sites, registers)
    passing = mode if kind in ("UNEXPOSED_EXPR", "PAREN_EXPR") else "r"
    for ch in _kids(n):
        _collect(ex, ch, ctx, passing, sites, registers)


def _callee_definition(ex: _Export, call: Any) -> Any | None:
    """The export's own definition of the function a call calls (by name for a dependent call)."""
    if _operator(call) is not None:
        return None
    r = call.referenced
    d = r.get_definition() if r is not None and _kind(r) in _FUNC_KINDS else None
    if d is not None:
        return d if d in ex.defined else None
    name = _called_name(call)
    return (
        next((f for f in ex.functions if f.spelling == name and _kind(f) != "CXX_METHOD"), None)
        if name
        else None
    )


def _called_name(call: Any) -> str:
    """The name a call calls: its function's, or for a dependent call the overload set's ('' if neither)."""
    r = call.referenced
    if r is not None:
        return r.spelling if _kind(r) in _FUNC_KINDS else ""
    k = _kids(call)
    head = k[0].referenced if k and _kind(k[0]) in ("DECL_REF_EXPR", "OVERLOADED_DECL_REF") else None
    return head.spelling if head is not None and _kind(head) == "OVERLOADED_DECL_REF" else ""


def _inline(ex: _Export, call: Any, f: Any, ctx: _Ctx, sites: dict, registers: dict) -> None:
    """Count a called function's accesses as the pipeline's (HLS inlines it there), once per unrolled
    copy of the call whose arguments differ (the unrolled loop variables they depend on)."""
    inner: dict[tuple[Any, ...], int] = {}
    body = next((x for x in _kids(f) if _kind(x) == "COMPOUND_STMT"), None)
    if body is None:
        return
    sub = _Ctx(f, (), frozenset(_writes(ex, body)), ctx.stack + (f,))
    _collect(ex, body, sub, "r", inner, registers)
    args = _kids(call)[1:]
    for copy in _copies(ex, args, ctx) or [None]:  # one inlined instance per distinct argument list
        for key, m in inner.items():
            sites[(*key, call, copy)] = m


def _record(ex: _Export, n: Any, ctx: _Ctx, mode: str, sites: dict, registers: dict) -> None:
    """One element access, counted once per distinct address over the unrolled copies (HLS shares an
    access whose address is the same expression: a word read once, sliced into lanes, is one read)."""
    base, idxs = n, []
    while _kind(base) == "ARRAY_SUBSCRIPT_EXPR":
        k = _kids(base)
        idxs.insert(0, k[1])
        base = _strip(k[0])
    for i in idxs:
        _collect(ex, i, ctx, "r", sites, registers)
    decl, _shift = _root(ex, base, 0, 0)
    if decl is None:
        return
    deps = frozenset().union(*(_deps(ex, i, ctx) for i in idxs))
    copies = _copies(ex, idxs, ctx)
    for address in copies if copies is not None else [(_text(n), i) for i in range(_fanout(ctx, deps))]:
        for m in ("r", "w"):
            if m in mode:
                sites[(decl, m, address)] = 1
    local = (
        ex.source(decl) is ex.source(ctx.loop)
        and ctx.loop.extent.start.offset <= decl.extent.start.offset <= ctx.loop.extent.end.offset
    )
    registers[decl] = registers.get(decl, True) and local and deps <= {v for v, _, _ in ctx.unrolled}


def _fanout(ctx: _Ctx, deps: frozenset[Any]) -> int:
    """Copies of an access under the unrolled loops whose variables its address depends on."""
    return int(_prod(len(vals) for v, vals, _ in ctx.unrolled if v in deps))


def _copies(ex: _Export, exprs: Sequence[Any], ctx: _Ctx) -> set[tuple[Any, ...]] | None:
    """The distinct symbolic values of expressions over every unrolled copy (None: too many copies)."""
    deps = frozenset().union(*(_deps(ex, e, ctx) for e in exprs))
    loops = [(v, vals) for v, vals, _ in ctx.unrolled if v in deps]
    if _fanout(ctx, deps) > 4096:
        return None
    out: set[tuple[Any, ...]] = set()
    for combo in itertools.product(*(vals for _, vals in loops)):
        env = {v: x for (v, _), x in zip(loops, combo, strict=True)}
        out.add(tuple(_sym(ex, e, env, ctx, 0) for e in exprs))
    return out


def _expandable(ex: _Export, r: Any, ctx: _Ctx) -> Any | None:
    """The initialiser of a local of the pipelined loop that is set once (not a loop variable), else None."""
    inside = (
        _kind(r) == "VAR_DECL"
        and ex.source(r) is ex.source(ctx.loop)
        and ctx.loop.extent.start.offset <= r.extent.start.offset <= ctx.loop.extent.end.offset
    )
    return _init(r) if inside and r not in ex.loop_vars and r not in ctx.written else None


def _per_copy(r: Any, ctx: _Ctx) -> list[Any]:
    """The unrolled loops a runtime local is declared in: each unrolled copy has its own."""
    off = r.extent.start.offset
    return [
        v
        for v, _, loop in ctx.unrolled
        if v != r and loop.extent.start.offset <= off <= loop.extent.end.offset
    ]


def _deps(ex: _Export, e: Any, ctx: _Ctx) -> frozenset[Any]:
    """Non-constant variables an index depends on, seen through locals of the loop that are set once."""
    out: set[Any] = set()
    for n in ex.walk(e):
        r = n.referenced if _kind(n) == "DECL_REF_EXPR" else None
        if (
            r is None
            or _kind(r) not in ("VAR_DECL", "PARM_DECL")
            or (_kind(r) == "VAR_DECL" and ex._const_var(r))
        ):
            continue
        init = _expandable(ex, r, ctx)
        key = ("deps", r, ctx.loop)
        if init is not None and key not in ex._memo:
            ex._memo[key] = frozenset()
            ex._memo[key] = _deps(ex, init, ctx)
        out |= (
            ex._memo[key] if init is not None else {r, *(_per_copy(r, ctx) if r not in ex.loop_vars else ())}
        )
    return frozenset(out)


# symbolic addresses: ("aff", {(variable, coefficient)}, constant) for affine forms of runtime variables,
# ("op", ...) for anything else (equal only if built the same way from the same parts)
def _aff(terms: dict[Any, int], c: int) -> tuple[Any, ...]:
    return ("aff", frozenset((v, k) for v, k in terms.items() if k), c)


def _const_of(a: tuple[Any, ...]) -> int | None:
    return a[2] if a[0] == "aff" and not a[1] else None


def _combine(op: str, a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    """a OP b on symbolic values: exact on constants and affine sums/scalings, opaque otherwise."""
    ca, cb = _const_of(a), _const_of(b)
    if ca is not None and cb is not None:
        got = _apply(op, [ca, cb])
        return _aff({}, got) if got is not None else ("op", op, a, b)
    if a[0] == b[0] == "aff" and op in ("+", "-"):
        terms = dict(a[1])
        for v, k in b[1]:
            terms[v] = terms.get(v, 0) + (k if op == "+" else -k)
        return _aff(terms, a[2] + b[2] if op == "+" else a[2] - b[2])
    scale = cb if op == "*" else (1 << cb if op == "<<" and cb is not None and 0 <= cb < 64 else None)
    if op == "*" and ca is not None and b[0] == "aff":
        a, b, scale = b, a, ca
    if scale is not None and a[0] == "aff":
        return _aff({v: k * scale for v, k in a[1]}, a[2] * scale)
    return ("op", op, a, b)


def _sym(ex: _Export, e: Any, env: dict[Any, int], ctx: _Ctx, depth: int) -> tuple[Any, ...]:
    """The symbolic value of an index with the unrolled loop variables set as in env."""
    got = ex.value(e) if e.kind.is_expression() else None
    if got is not None:
        return _aff({}, got)
    e = _strip(e)
    kind, op = _kind(e), _operator(e)
    if (
        kind == "DECL_REF_EXPR"
        and e.referenced is not None
        and _kind(e.referenced) in ("VAR_DECL", "PARM_DECL")
    ):
        r = e.referenced
        init = _expandable(ex, r, ctx) if depth < 16 else None
        if r in env:
            return _aff({}, env[r])
        if init is not None:
            return _sym(ex, init, env, ctx, depth + 1)
        return _aff({(r, *(env.get(v) for v in _per_copy(r, ctx))): 1}, 0)
    if kind in _CASTS and _kids(e):
        return _sym(ex, _kids(e)[-1], env, ctx, depth + 1)
    if op is not None and len(op[1]) == 2:
        return _combine(
            op[0], _sym(ex, op[1][0], env, ctx, depth + 1), _sym(ex, op[1][1], env, ctx, depth + 1)
        )
    if op is not None and op[0] in ("-", "+"):
        return _combine("*", _sym(ex, op[1][0], env, ctx, depth + 1), _aff({}, -1 if op[0] == "-" else 1))
    parts = tuple(sorted((v.hash, x) for v, x in env.items() if v in _deps(ex, e, ctx)))
    return ("op", _text(e), parts)


def _root(ex: _Export, e: Any, shift: int, depth: int) -> tuple[Any | None, int]:
    """The array (or pointer parameter) an expression points into, and how many leading dimensions it
    fixes (``wt[buf]`` fixes one); local pointers are followed to their initialiser."""
    e = _strip(e)
    kind = _kind(e)
    if (
        kind == "DECL_REF_EXPR"
        and e.referenced is not None
        and _kind(e.referenced) in ("VAR_DECL", "PARM_DECL")
    ):
        r = e.referenced
        init = _init(r) if _kind(r) == "VAR_DECL" and _kind(r.type.get_canonical()) == "POINTER" else None
        return _root(ex, init, shift, depth + 1) if init is not None and depth < 8 else (r, shift)
    if kind == "ARRAY_SUBSCRIPT_EXPR":
        return _root(ex, _kids(e)[0], shift + 1, depth)
    if kind in _CASTS and _kids(e):
        return _root(ex, _kids(e)[-1], shift, depth)
    op = _operator(e)
    if op and op[0] in ("+", "-") and len(op[1]) == 2:
        ptr = [x for x in op[1] if _kind(_strip(x).type.get_canonical()) in ("POINTER", *_ARRAYS)]
        return _root(ex, ptr[0], shift, depth) if ptr else (None, 0)
    if op and op[0] == "&" and len(op[1]) == 1 and _kind(_strip(op[1][0])) == "ARRAY_SUBSCRIPT_EXPR":
        return _root(ex, _kids(_strip(op[1][0]))[0], shift, depth)
    return None, 0


def _storage(ex: _Export, decl: Any) -> list[Pragma]:
    """ARRAY_PARTITION / ARRAY_RESHAPE / BIND_STORAGE pragmas naming a variable in its scope."""
    f = ex.function_of(decl)
    pool = ex.function_pragmas(f) if f is not None else ex.pragmas
    kinds = ("ARRAY_PARTITION", "ARRAY_RESHAPE", "BIND_STORAGE", "RESOURCE")
    return [p for p in pool if p.directive in kinds and p.opts.get("variable") == decl.spelling]


def _allowed(ex: _Export, decl: Any, shift: int, seen: frozenset[Any]) -> tuple[float, str]:
    """Accesses per cycle an array's storage gives: ports x banks of its partitioned dimensions past
    ``shift``, from its own pragmas or, for a parameter with none, the least its callers' arrays give."""
    if (
        _kind(decl) == "PARM_DECL"
        and decl.spelling in ex.maxi
        and ex.source(decl) is ex.sources.get(os.path.realpath(ex.root / "top.cpp"))
    ):
        return math.inf, "an m_axi port"  # the narrow-maxi rule checks ports
    prag = _storage(ex, decl)
    if _kind(decl) == "PARM_DECL" and not prag and decl not in seen:
        got = [_root(ex, a, 0, 0) for a in _param_args(ex, decl)]
        options = [_allowed(ex, d, shift + s, seen | {decl}) for d, s in got if d is not None]
        if options:
            return min(options, key=lambda o: o[0])
    ports = (
        1
        if any(p.directive in ("BIND_STORAGE", "RESOURCE") and "1p" in str(p.opts).lower() for p in prag)
        else RAM_PORTS
    )
    dims, banks = _dims(decl.type), 1.0
    for p in prag:
        if p.directive not in ("ARRAY_PARTITION", "ARRAY_RESHAPE"):
            continue
        d = ex.pragma_int(p.opts.get("dim", "1"))
        complete = "complete" in p.flags or p.opts.get("type", "").lower() == "complete"
        if d == 0:
            banks *= math.inf if complete else ex.pragma_int(p.opts.get("factor", "1")) ** len(dims)
        elif d > shift:
            size = dims[d - 1] if d - 1 < len(dims) else None
            banks *= (size or math.inf) if complete else ex.pragma_int(p.opts.get("factor", "1"))
    if dims and all(_complete(ex, prag, d) for d in range(shift + 1, len(dims) + 1)):
        return math.inf, "registers"
    owner = ex.function_of(decl)
    where = f"`{decl.spelling}` in {owner.spelling}" if owner is not None else f"global `{decl.spelling}`"
    return ports * banks, f"{where}: {ports} ports x {banks:g} bank{'s' * (banks != 1)}"


def _complete(ex: _Export, prag: Sequence[Pragma], dim: int) -> bool:
    """Whether a dimension (1-based) is completely partitioned by one of the pragmas (dim=0: all)."""
    return any(
        p.directive == "ARRAY_PARTITION"
        and ex.pragma_int(p.opts.get("dim", "1")) in (0, dim)
        and ("complete" in p.flags or p.opts.get("type", "").lower() == "complete")
        for p in prag
    )


def _param_args(ex: _Export, param: Any) -> Iterator[Any]:
    """The argument expressions passed for a parameter at every call of its function."""
    f = param.semantic_parent
    if f is None:
        return
    params = [x for x in _kids(f) if _kind(x) == "PARM_DECL"]
    i = next((j for j, x in enumerate(params) if x == param), None)
    for args in ex.calls.get(f.spelling, []) if i is not None else []:
        if i < len(args):
            yield args[i]


# ---- rule: wide-int ------------------------------------------------------------------------------------
def _wide_what(n: Any) -> str | None:
    """What 64-bit C type a cursor declares, casts to or spells as a literal, if any."""
    kind = _kind(n)
    if kind in ("VAR_DECL", "PARM_DECL", "FIELD_DECL") and _is_wide(n.type):
        return f"{n.type.spelling} {n.spelling}"
    if kind in _FUNC_KINDS and _kind(n) != "CONSTRUCTOR" and _is_wide(n.result_type):
        return f"{n.result_type.spelling} {n.spelling}()"
    if kind in _CASTS and _is_wide(n.type):
        return f"cast to {n.type.spelling}"
    if kind == "INTEGER_LITERAL" and _kind(n.type.get_canonical()) in _WIDE_KINDS:
        return f"literal {_text(n)}"
    return None


def _wide_int(ex: _Export) -> Iterator[Finding]:
    """No 64-bit C integers (long, long long, int64_t, i64) in kernel code: hardware has exact widths."""
    hits: dict[tuple[str, int], list[str]] = {}
    for n in ex.nodes:
        what = _wide_what(n)
        if what:
            f = ex.finding(n, "wide-int", "")
            hits.setdefault((f.file, f.line), []).append(what)
    for (file, line), items in hits.items():
        yield Finding(
            file,
            line,
            "wide-int",
            f"64-bit C type in kernel code ({', '.join(dict.fromkeys(items))}): "
            f"use ap_int/ap_uint at the value's width",
        )


# ---- rule: tripcount -----------------------------------------------------------------------------------
def _tripcount(ex: _Export) -> Iterator[Finding]:
    """Every for loop with a bound not fixed at compile time carries a LOOP_TRIPCOUNT."""
    for loop in ex.loops:
        if _kind(loop.node) != "FOR_STMT" or loop.cond is None:
            continue
        parts = [x for x in (loop.start, loop.cond, loop.inc) if x is not None]
        if all(ex.is_const(x, loop.var) for x in parts):
            continue
        if any(p.directive == "LOOP_TRIPCOUNT" for p in ex.loop_pragmas(loop)):
            continue
        yield ex.finding(
            loop.node,
            "tripcount",
            f"`{loop.header}`: trip count not fixed at compile time and "
            f"no #pragma HLS LOOP_TRIPCOUNT, so no latency can be reported",
        )


# ---- rule: unbounded-loop ------------------------------------------------------------------------------
def _unbounded_loop(ex: _Export) -> Iterator[Finding]:
    """No while/do loops and no for loops without a condition: their trip count is data-dependent."""
    for loop in ex.loops:
        kind = _kind(loop.node)
        if kind in ("WHILE_STMT", "DO_STMT"):
            word = "while" if kind == "WHILE_STMT" else "do-while"
            yield ex.finding(
                loop.node,
                "unbounded-loop",
                f"`{word}` loop: a data-dependent exit gives no latency "
                f"bound; use a for loop with a constant bound",
            )
        elif kind == "FOR_STMT" and loop.cond is None:
            yield ex.finding(loop.node, "unbounded-loop", "for loop without a condition: no latency bound")


# ---- rule: global-write --------------------------------------------------------------------------------
def _target(e: Any) -> Any | None:
    """The variable an assignment target names (through subscripts and member accesses)."""
    e = _strip(e)
    kind, k = _kind(e), _kids(e)
    if kind == "DECL_REF_EXPR":
        return e.referenced
    if kind in ("ARRAY_SUBSCRIPT_EXPR", "MEMBER_REF_EXPR") and k:
        return _target(k[0])
    return None


def _global_write(ex: _Export) -> Iterator[Finding]:
    """No writes to namespace-scope variables: a global is one register every call shares (serialises)."""
    for n in ex.nodes:
        op = _operator(n)
        v = _target(op[1][0]) if op and op[0] in _WRITES else None
        if (
            v is not None
            and _kind(v) == "VAR_DECL"
            and v.semantic_parent is not None
            and _kind(v.semantic_parent) in _SCOPES
        ):
            yield ex.finding(
                n,
                "global-write",
                f"writes the global `{v.spelling}`: keep debug state behind "
                f"#ifndef __SYNTHESIS__, kernel state in locals or ports",
            )


# ---- rule: dataflow ------------------------------------------------------------------------------------
def _dataflow(ex: _Export) -> Iterator[Finding]:
    """Each function the perf model overlaps (OVERLAP_FUNCTIONS) exists and has #pragma HLS DATAFLOW."""
    for name in OVERLAP_FUNCTIONS:
        defs = [f for f in ex.functions if f.spelling == name]
        if not defs:
            yield Finding(
                "top.cpp",
                1,
                "dataflow",
                f"`{name}` is not in the export, but the perf model overlaps its load, compute and store",
            )
        for f in defs:
            if not any(p.directive == "DATAFLOW" for p in ex.function_pragmas(f)):
                yield ex.finding(
                    f,
                    "dataflow",
                    f"`{name}` has no #pragma HLS DATAFLOW: its stages run one "
                    f"after another, not overlapped as the perf model assumes",
                )


# ---- rule: narrow-maxi ---------------------------------------------------------------------------------
def _axi_bits(ex: _Export) -> int | None:
    """The export's AXI width: export.json kernel_params.axi_bits, else config.h's AXI_BITS."""
    meta = ex.root / "export.json"
    if meta.is_file():
        bits = json.loads(meta.read_text()).get("kernel_params", {}).get("axi_bits")
        if isinstance(bits, int):
            return bits
    return next(
        (
            ex.value(_init(n))
            for n in ex.nodes
            if _kind(n) == "VAR_DECL" and n.spelling == "AXI_BITS" and _init(n) is not None
        ),
        None,
    )


def _narrow_maxi(ex: _Export) -> Iterator[Finding]:
    """Every m_axi port is a pointer to words of at least the AXI width, and has depth= for cosim."""
    axi = _axi_bits(ex)
    for p in (p for p in ex.pragmas if p.file == "top.cpp" and _is_maxi(p)):
        port = p.opts.get("port", "")
        f = next(
            (
                f
                for f in ex.functions
                if ex.source(f) is not None
                and ex.source(f).rel == "top.cpp"
                and f.extent.start.line <= p.line <= f.extent.end.line
            ),
            None,
        )
        param = (
            next((x for x in _kids(f) if _kind(x) == "PARM_DECL" and x.spelling == port), None) if f else None
        )
        if param is None:
            yield ex.finding(
                p, "narrow-maxi", f"m_axi port `{port}` is not a parameter of the function around it"
            )
        else:
            t = param.type.get_canonical()
            elem = t.get_pointee() if _kind(t) == "POINTER" else t.element_type
            bits = _bits(elem)
            if axi is None or bits is None or bits < axi:
                yield ex.finding(
                    p,
                    "narrow-maxi",
                    f"m_axi port `{port}` is `{param.type.spelling}` ({bits} bits "
                    f"per access) on a {axi}-bit bus: make it ap_uint<{axi}>*",
                )
        if "depth" not in p.opts:
            yield ex.finding(
                p, "narrow-maxi", f"m_axi port `{port}` has no depth= (cosim sizes its buffer by it)"
            )


# ---- rule: readahead ----------------------------------------------------------------------------------
READAHEAD_CONSTS = ("AXI_LATENCY", "RD_AHEAD_BEATS", "RD_BURST")


def _config_const(ex: _Export, name: str) -> int | None:
    """The value of a constant the export declares (config.h's ``const int NAME = ...``), else None."""
    return next(
        (
            ex.value(_init(n))
            for n in ex.nodes
            if _kind(n) == "VAR_DECL" and n.spelling == name and _init(n) is not None
        ),
        None,
    )


def _readahead(ex: _Export) -> Iterator[Finding]:
    """Every m_axi port expects the board's read latency, and each weight bundle (gmem_w*) keeps enough
    bursts outstanding for the latency x rate the perf model hides: (num_read_outstanding - 1) x
    max_read_burst_length >= config.h's RD_AHEAD_BEATS (one burst being drained, the rest in flight;
    UG1399 'Controlling AXI4 Burst Behavior'), in bursts of RD_BURST (the model charges one per-burst
    overhead per tile). Checked where config.h states the figures (hls_export.axi_readahead writes them)
    or the folder is a real export (export.json); a real export without them is a finding."""
    got = {k: _config_const(ex, k) for k in READAHEAD_CONSTS}
    if all(v is None for v in got.values()) and not (ex.root / "export.json").is_file():
        return
    missing = [k for k, v in got.items() if v is None]
    if missing:
        yield Finding(
            "config.h",
            1,
            "readahead",
            f"config.h states no {', '.join(missing)}: the m_axi read-ahead cannot be checked against the "
            "latency the perf model hides (hls_export.axi_readahead writes them)",
        )
        return
    lat, ahead, burst = got["AXI_LATENCY"], got["RD_AHEAD_BEATS"], got["RD_BURST"]
    for p in (p for p in ex.pragmas if p.file == "top.cpp" and _is_maxi(p)):
        port, o = p.opts.get("port", ""), {k: p.opts.get(k) for k in ("latency", "max_read_burst_length",
                                                                         "num_read_outstanding")}
        try:
            v = {k: int(x) for k, x in o.items() if x is not None}
        except ValueError:
            yield ex.finding(p, "readahead", f"m_axi port `{port}`: latency/burst options must be integers")
            continue
        if "latency" not in v:
            yield ex.finding(
                p,
                "readahead",
                f"m_axi port `{port}` states no latency = (the tool's default then decides when requests "
                f"go out): state config.h's AXI_LATENCY = {lat}",
            )
        elif v["latency"] < lat:
            yield ex.finding(
                p,
                "readahead",
                f"m_axi port `{port}` has latency = {v['latency']}, below the board's AXI_LATENCY = {lat} "
                "cycles: requests are issued too late and the load waits",
            )
        if not p.opts.get("bundle", "").startswith("gmem_w"):
            continue
        b, n = v.get("max_read_burst_length"), v.get("num_read_outstanding")
        if b != burst:
            yield ex.finding(
                p,
                "readahead",
                f"weight port `{port}` has max_read_burst_length = {o['max_read_burst_length']}, not "
                f"config.h's RD_BURST = {burst} (one tile per port, the bursts the perf model counts)",
            )
        elif n is None or (n - 1) * b < ahead:
            yield ex.finding(
                p,
                "readahead",
                f"weight port `{port}` keeps {o['num_read_outstanding'] or 'the default'} bursts of {b} "
                "beats "
                f"outstanding: fewer than 1 + RD_AHEAD_BEATS / RD_BURST = 1 + {ahead} / {b}, so the board's "
                "first-beat latency is paid per burst, not once per call as the perf model assumes",
            )


# ---- rule: runtime-div ---------------------------------------------------------------------------------
def _runtime_div(ex: _Export) -> Iterator[Finding]:
    """No / or % by a divisor unknown at compile time: a runtime divider is a slow multi-cycle circuit."""
    for n in ex.nodes:
        op = _operator(n)
        if op and op[0] in ("/", "%", "/=", "%=") and len(op[1]) == 2 and not ex.is_const(op[1][1]):
            yield ex.finding(
                n,
                "runtime-div",
                f"`{_text(n)}`: the divisor `{_text(op[1][1])}` is not a "
                f"compile-time constant; divide by a constant or a power of two",
            )


RULES: dict[str, Callable[[_Export], Iterable[Finding]]] = {
    "array-ports": _array_ports,
    "wide-int": _wide_int,
    "tripcount": _tripcount,
    "unbounded-loop": _unbounded_loop,
    "global-write": _global_write,
    "dataflow": _dataflow,
    "narrow-maxi": _narrow_maxi,
    "runtime-div": _runtime_div,
    "readahead": _readahead,
}


def lint(export_dir: str | Path, rules: Iterable[str] | None = None) -> list[Finding]:
    """All findings of the named rules (default: every rule) on an export folder, sorted by place."""
    root = Path(export_dir)
    if not root.is_dir():
        raise LintError(f"{root}: no such folder")
    if not (root / "top.cpp").is_file():
        raise LintError(f"{root}: no top.cpp (not an HLS export folder)")
    names = list(RULES) if rules is None else list(rules)
    unknown = [r for r in names if r not in RULES]
    if unknown:
        raise LintError(f"unknown rule(s) {', '.join(unknown)}; the rules are {', '.join(RULES)}")
    try:
        ex = _Export(root)
        found = {f for name in names for f in RULES[name](ex) if not ex.allowed(f)}
    finally:
        _kids.cache_clear()  # the caches hold cursors, and so the translation unit
        _operator.cache_clear()
    return sorted(found, key=lambda f: (f.file, f.line, f.rule, f.message))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mtl_moe.hls_lint EXPORT_DIR [--json]``: exit 0 clean, 1 findings, 2 cannot lint."""
    ap = argparse.ArgumentParser(prog="hls_lint", description=__doc__.splitlines()[0])
    ap.add_argument("export_dir", type=Path, help="an export folder (top.cpp, config.h, include/mtl_moe/)")
    ap.add_argument("--json", action="store_true", help="print the findings and counts as JSON")
    ap.add_argument("--rule", action="append", choices=list(RULES), help="only this rule (repeatable)")
    a = ap.parse_args(argv)
    try:
        found = lint(a.export_dir, a.rule)
    except LintError as e:
        print(f"hls_lint: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    counts = dict(sorted(Counter(f.rule for f in found).items()))
    if a.json:
        print(
            json.dumps(
                {"export": str(a.export_dir), "findings": [asdict(f) for f in found], "counts": counts},
                indent=1,
            )
        )
    else:
        for f in found:
            print(f)
        detail = f" ({', '.join(f'{r}: {n}' for r, n in counts.items())})" if counts else ""
        print(f"hls_lint: {len(found)} finding{'s' * (len(found) != 1)} in {a.export_dir}{detail}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
