"""Every public function and class documents its arguments, its result
and the library errors it raises, in Google style (which Sphinx renders
through napoleon).

What counts as public: the names in ``__all__`` of ``kms_reencrypt``,
``kms_reencrypt.exceptions``, ``kms_reencrypt.testing`` (its fixtures),
``kms_reencrypt.local`` and ``kms_reencrypt.dask``, and the public
methods and properties that a public class defines or inherits from a
class of this package.

The rules, each checked below:

1. A public function, class, method or property has a docstring.
2. ``Args:`` names every parameter other than ``self`` and ``cls``
   (``*args`` and ``**kwargs`` by their bare names), and nothing else.
   A class documents its constructor in its own docstring, under
   ``Args:``, or under ``Attributes:`` for an attrs class, whose
   constructor parameters are its attributes. A class that inherits its
   constructor (the exceptions named after KMS error codes) is
   documented on the class that defines it.
3. ``Returns:`` (``Yields:`` for a generator fixture) is there when the
   return annotation is not ``None``. Properties are exempt: their
   docstring describes the value.
4. Every name under ``Raises:`` is an exception class: one that a
   public module of this library exports (``kms_reencrypt.exceptions``,
   the local KMS's ``KmsError``, ``kms_reencrypt.dask``'s
   ``TaskCancelledError``), or a built-in.
5. ``Raises:`` lists every exception class, a library error or a
   built-in one, that the callable raises by name itself (``raise
   Name(...)`` or ``raise Name``), or through the private helpers it
   calls (``_name(...)`` in its module, ``self._name(...)`` in its
   class, followed to any depth), or, for an attrs class, through its
   field validators and converters; a base class of the error counts.
   A callable that raises nothing needs no ``Raises:``. A ``raise``
   inside a ``try`` whose handler catches the error does not count, nor
   does a nested function, a bare ``raise`` (re-raising what a handler
   caught) or ``raise`` of a variable. ``raise
   translate_botocore_error(...)`` counts as any library error, so at
   least one must be listed. Errors that come from calling public
   functions or other objects' methods are not followed: they are
   documented where they are raised, so this rule is a floor, not a
   proof.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import attrs
import pytest

import kms_reencrypt
import kms_reencrypt.dask
import kms_reencrypt.exceptions
import kms_reencrypt.local
import kms_reencrypt.testing
from kms_reencrypt import ConfigurationError, ReEncryptClient
from kms_reencrypt._rotate import RotationConfig, rotate_iter
from kms_reencrypt.exceptions import KmsReEncryptError
from kms_reencrypt.local import KmsError

_PUBLIC_MODULES: tuple[ModuleType, ...] = (
    kms_reencrypt,
    kms_reencrypt.exceptions,
    kms_reencrypt.testing,
    kms_reencrypt.local,
    kms_reencrypt.dask,
)
_LIBRARY_ERRORS = (KmsReEncryptError, KmsError)
_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_ENTRY = re.compile(r"^ {4}(\*{0,2}[A-Za-z_][\w.]*)\s*(?:\([^)]*\))?:")
# Marks ``raise translate_botocore_error(...)``: any library error.
_ANY_LIBRARY_ERROR = "any library error"


# -- what is public --


def _ours(obj: object) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.startswith("kms_reencrypt")


def _unwrap_fixture(obj: Any) -> Any:
    wrapped = getattr(obj, "_get_wrapped_function", None)
    return wrapped() if wrapped is not None else obj


def _public_objects() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for module in _PUBLIC_MODULES:
        for name in module.__all__:
            obj = _unwrap_fixture(getattr(module, name))
            if not (callable(obj) and _ours(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{obj.__module__}.{obj.__qualname__}", obj
            if isinstance(obj, type):
                yield from _public_members(obj, seen)


def _public_members(cls: type, seen: set[int]) -> Iterator[tuple[str, Any]]:
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or id(member) in seen:
                continue
            if isinstance(member, classmethod | staticmethod):
                member = member.__func__
            if isinstance(member, property) or inspect.isfunction(member):
                seen.add(id(member))
                yield f"{klass.__module__}.{klass.__qualname__}.{name}", member


PUBLIC = dict(_public_objects())


# -- reading a Google-style docstring --


def _sections(doc: str) -> dict[str, list[str]]:
    """Map each section title to its lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in inspect.cleandoc(doc).splitlines():
        header = _SECTION.match(line)
        if header:
            current = sections.setdefault(header.group(1), [])
        elif current is not None and (line.startswith(" ") or not line):
            current.append(line)
        else:
            current = None
    return sections


def _entries(lines: list[str]) -> list[str]:
    names = []
    for line in lines:
        found = _ENTRY.match(line)
        if found:
            names.append(found.group(1).lstrip("*"))
    return names


def _has_text(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _doc(obj: Any) -> str:
    if isinstance(obj, property):
        return (obj.fget.__doc__ if obj.fget else None) or ""
    return inspect.getdoc(obj) or ""


# -- what a callable takes and returns --


def _constructor(cls: type) -> Callable[..., Any] | None:
    """The constructor a class defines itself, if it is ours to document."""
    init = vars(cls).get("__init__")
    if init is None:
        return None
    return init if inspect.isfunction(init) else None


def _parameters(func: Callable[..., Any]) -> list[str]:
    names = list(inspect.signature(func).parameters)
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _signature_target(obj: Any) -> Callable[..., Any] | None:
    if isinstance(obj, property):
        return None
    if isinstance(obj, type):
        return _constructor(obj)
    return obj


# -- what a callable raises --


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> list[Any]:
    """The objects an expression naming a class may stand for."""
    if isinstance(node, ast.Name):
        if node.id in namespace:
            return [namespace[node.id]]
        return [getattr(builtins, node.id, None)]
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        return [getattr(b, node.attr, None) for b in base]
    if isinstance(node, ast.Tuple):
        return [obj for elt in node.elts for obj in _resolve(elt, namespace)]
    if isinstance(node, ast.IfExp):
        return _resolve(node.body, namespace) + _resolve(
            node.orelse, namespace
        )
    return []


def _is_library_error(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, _LIBRARY_ERRORS)


def _is_exception_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseException)


def _caught(error: Any, catchers: list[type]) -> bool:
    if error == _ANY_LIBRARY_ERROR:
        return any(issubclass(KmsReEncryptError, c) for c in catchers)
    return any(issubclass(error, c) for c in catchers)


class _RaiseFinder(ast.NodeVisitor):
    """Collects the exception classes a function body raises, and the
    private helpers it calls, outside handlers that catch them."""

    def __init__(self, namespace: dict[str, Any], owner: type | None) -> None:
        self.namespace = namespace
        self.owner = owner
        self.catchers: list[type] = []
        self.raised: list[Any] = []
        self.helpers: list[tuple[Callable[..., Any], list[type]]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        return  # a nested function raises when it is called, elsewhere

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        return

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        return

    def visit_Try(self, node: ast.Try) -> None:
        caught: list[type] = []
        for handler in node.handlers:
            if handler.type is None:
                caught.append(BaseException)
            else:
                caught += [
                    c
                    for c in _resolve(handler.type, self.namespace)
                    if isinstance(c, type)
                ]
        self.catchers += caught
        for statement in node.body:
            self.visit(statement)
        del self.catchers[len(self.catchers) - len(caught) :]
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def visit_Raise(self, node: ast.Raise) -> None:
        target = node.exc
        if isinstance(target, ast.Call):
            func = target.func
            if (
                isinstance(func, ast.Name)
                and func.id == "translate_botocore_error"
            ):
                self._add(_ANY_LIBRARY_ERROR)
                self.generic_visit(node)
                return
            target = func
        if target is not None:
            for obj in _resolve(target, self.namespace):
                if _is_exception_class(obj):
                    self._add(obj)
        self.generic_visit(node)

    def _add(self, error: Any) -> None:
        if not _caught(error, self.catchers):
            self.raised.append(error)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        helper = None
        if isinstance(func, ast.Name) and func.id.startswith("_"):
            helper = self.namespace.get(func.id)
        elif (
            isinstance(func, ast.Attribute)
            and func.attr.startswith("_")
            and not func.attr.startswith("__")
            and isinstance(func.value, ast.Name)
            and func.value.id in ("self", "cls")
            and self.owner is not None
        ):
            helper = inspect.getattr_static(self.owner, func.attr, None)
            if isinstance(helper, classmethod | staticmethod):
                helper = helper.__func__
        if inspect.isfunction(helper) and _ours(helper):
            self.helpers.append((helper, list(self.catchers)))
        self.generic_visit(node)


def _owner(func: Callable[..., Any]) -> type | None:
    qualname = func.__qualname__.split(".")
    if len(qualname) < 2 or "<locals>" in qualname:
        return None
    owner = inspect.getmodule(func)
    for part in qualname[:-1]:
        owner = getattr(owner, part, None)
    return owner if isinstance(owner, type) else None


def _raised_by(
    func: Callable[..., Any], visiting: frozenset[int] = frozenset()
) -> set[Any]:
    if id(func) in visiting:
        return set()
    return set(_raised_cached(func, visiting | {id(func)}))


@functools.cache
def _source_tree(func: Callable[..., Any]) -> ast.Module | None:
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return None  # generated (attrs) or built in
    return ast.parse(textwrap.dedent(source))


def _raised_cached(
    func: Callable[..., Any], visiting: frozenset[int]
) -> list[Any]:
    tree = _source_tree(func)
    if tree is None:
        return []
    finder = _RaiseFinder(func.__globals__, _owner(func))
    for statement in tree.body[0].body:
        finder.visit(statement)
    raised = list(finder.raised)
    for helper, catchers in finder.helpers:
        raised += [
            error
            for error in _raised_by(helper, visiting)
            if not _caught(error, catchers)
        ]
    return raised


def _attrs_hooks(cls: type) -> Iterator[Callable[..., Any]]:
    for field in attrs.fields(cls):
        for hook in (field.validator, field.converter):
            if inspect.isfunction(hook) and _ours(hook):
                yield hook
            for inner in getattr(hook, "_validators", ()):
                if inspect.isfunction(inner) and _ours(inner):
                    yield inner


def _raised(obj: Any) -> set[Any]:
    if isinstance(obj, property):
        return _raised_by(obj.fget) if obj.fget else set()
    if isinstance(obj, type):
        errors: set[Any] = set()
        init = _constructor(obj)
        if init is not None:
            errors |= _raised_by(init)
        if attrs.has(obj):
            for hook in _attrs_hooks(obj):
                errors |= _raised_by(hook)
        return errors
    return _raised_by(obj)


def _documented_errors(names: list[str]) -> list[Any]:
    """The objects the names under ``Raises:`` stand for: a name a public
    module exports, else a built-in; None for neither."""
    found = []
    for name in names:
        short = name.rpartition(".")[2]
        exported = [
            getattr(module, short)
            for module in _PUBLIC_MODULES
            if short in module.__all__
        ]
        found.append(
            exported[0] if exported else getattr(builtins, short, None)
        )
    return found


# -- the tests --


def test_the_public_surface_is_found() -> None:
    """The walk finds the names it should, so the rules below bite."""
    for expected in (
        "kms_reencrypt._client.ReEncryptClient.re_encrypt",
        "kms_reencrypt._rotate.rotate",
        "kms_reencrypt._rotate.RotationReport.to_dict",
        "kms_reencrypt.local._server.LocalKms.create_key",
        "kms_reencrypt.testing.local_kms",
        "kms_reencrypt._exceptions.translate_botocore_error",
        "kms_reencrypt.dask._collections.rotate_dataframe",
        "kms_reencrypt.dask._journal.PartitionJournal.record",
    ):
        assert expected in PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_documents_args_returns_and_raises(name: str) -> None:
    """Rules 1 to 5 of the module docstring, for one public name."""
    obj = PUBLIC[name]
    doc = _doc(obj)
    assert doc.strip(), "no docstring"
    sections = _sections(doc)
    problems = []

    func = _signature_target(obj)
    if func is not None:
        wanted = _parameters(func)
        args = _entries(sections.get("Args", []))
        documented = list(args)
        if isinstance(obj, type) and attrs.has(obj):
            documented += _entries(sections.get("Attributes", []))
        missing = [p for p in wanted if p not in documented]
        unknown = [a for a in args if a not in wanted]
        if missing:
            problems.append(f"Args does not name {missing}")
        if unknown:
            problems.append(f"Args names unknown parameters {unknown}")

    if not isinstance(obj, type | property):
        returns = inspect.signature(obj).return_annotation
        if returns not in ("None", None, "NoReturn"):
            section = sections.get("Returns") or sections.get("Yields")
            if not section or not _has_text(section):
                problems.append(f"no Returns section for -> {returns}")

    raises_names = _entries(sections.get("Raises", []))
    documented_errors = _documented_errors(raises_names)
    for raise_name, error in zip(raises_names, documented_errors, strict=True):
        if not (isinstance(error, type) and issubclass(error, BaseException)):
            problems.append(f"Raises names {raise_name}, not an exception")
    for error in _raised(obj):
        if error == _ANY_LIBRARY_ERROR:
            if not any(_is_library_error(e) for e in documented_errors):
                problems.append("Raises lists no library error")
        elif not any(
            isinstance(d, type) and issubclass(error, d)
            for d in documented_errors
        ):
            problems.append(f"Raises does not list {error.__name__}")

    assert [] == problems


def test_the_raise_rule_follows_helpers_and_respects_handlers() -> None:
    """The analysis behind rule 5 finds errors through helpers and drops
    those a surrounding ``try`` catches."""
    assert ConfigurationError in _raised(ReEncryptClient)
    assert ConfigurationError in _raised(RotationConfig)
    assert ConfigurationError in _raised(rotate_iter)
    assert _ANY_LIBRARY_ERROR in _raised(ReEncryptClient.send)
    # Built-in exceptions count too, properties included.
    local_kms = kms_reencrypt.local.LocalKms
    assert ValueError in _raised(local_kms.set_key_state)
    assert RuntimeError in _raised(vars(local_kms)["endpoint_url"])

    def swallowed() -> None:
        try:
            raise ConfigurationError("x", option="y")
        except ValueError:
            pass

    def escaped() -> None:
        try:
            raise ConfigurationError("x", option="y")
        except TypeError:
            pass

    def swallowed_builtin() -> None:
        try:
            raise KeyError("x")
        except LookupError:
            pass

    def reraised() -> None:
        try:
            swallowed()
        except TypeError as error:
            raise error from None
        except ValueError:
            raise

    assert set() == _raised_by(swallowed)
    assert {ConfigurationError} == _raised_by(escaped)
    assert set() == _raised_by(swallowed_builtin)
    assert set() == _raised_by(reraised)
