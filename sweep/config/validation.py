"""From user input to checked values: a spec file's YAML (``read_yaml``), and pydantic's
validation of a class (``validated``) with its first error turned into a ``SpecError`` that
names the field's dotted path and the value in one line."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from sweep.config.fields import SpecError, plain

# The keys allowed where an error's location names an unknown one: (location, prefix) ->
# names; the schema's own lookup (spec.py), which knows its sections.
KnownFields = Callable[[tuple, str], list[str]]


def read_yaml(path: str | Path) -> dict:
    """A spec (or study) file's YAML mapping, or a SpecError saying why not."""
    p = Path(path)
    if not p.is_file():
        raise SpecError("spec", str(path), "file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except UnicodeDecodeError as e:
        raise SpecError("spec", str(path), f"not valid YAML (not UTF-8 text: {e.reason})") from None
    except yaml.YAMLError as e:
        raise SpecError("spec", str(path), f"not valid YAML ({_yaml_why(e)})") from None
    if not isinstance(raw, dict):
        raise SpecError("spec", str(path), "must be a YAML mapping")
    return raw


def _yaml_why(e: yaml.YAMLError) -> str:
    """The parser's complaint with its place: line and column (1-based) of the problem,
    and a tab named as such (YAML forbids tabs in indentation)."""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if mark is not None and mark.buffer and mark.pointer < len(mark.buffer):
        if mark.buffer[mark.pointer] == "\t" or "\t" in problem:
            problem = "a tab character (indent with spaces)"
    return problem + where


def as_entry(v: Any) -> Any:
    """An entry of ``shapes`` / ``controls`` written as a bare shape name: its mapping."""
    return {"shape": v} if isinstance(v, str) else v


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def validated(cls: type, data: Any, prefix: str, known: KnownFields) -> Any:
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as exc:
        raise _spec_error(exc.errors()[0], data, prefix, known) from None


# What a pydantic error type means, in the words of a SpecError.
_WHY = {
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "dataclass_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "too_short": "must not be empty",
    "missing": "is required",
    "missing_keyword_argument": "is required",
}


def _spec_error(err: dict, data: Any, prefix: str, known: KnownFields) -> SpecError:
    """The first pydantic error as a SpecError naming the field's dotted path."""
    kind, loc, ctx = err["type"], err["loc"], err.get("ctx", {})
    name = _where(loc, data, prefix)
    value = None if kind.startswith("missing") else plain(err["input"])
    bounds = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    if loc[-1:] == ("shape",) and kind == "missing":
        value, why = plain(err["input"]), "an entry needs a shape"
    elif "[key]" in loc:
        why = "keys must be strings"
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
        why = f"unknown field (known: {', '.join(known(loc, prefix))})"
    elif kind in _WHY:
        why = _WHY[kind]
    elif kind == "literal_error":
        why = f"must be one of {ctx['expected'].replace(chr(39), '')}"
    elif kind == "value_error":
        why = str(ctx["error"])
    elif set(ctx) & set(bounds):
        limit = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in ctx.items()}
        why = " and ".join(f"must be {bounds[k]} {limit[k]}" for k in bounds if k in ctx)
    elif kind == "too_long":
        why = f"must have at most {ctx['max_length']} items"
    else:
        why = err["msg"].splitlines()[0]
    return SpecError(name, value, why)


def _where(loc: tuple, data: Any, prefix: str) -> str:
    """``('schedules', 'shapes', 1, 'switch', 0)`` -> ``schedules.shapes[two_stage].switch``:
    list positions dropped, except that an entry of shapes / controls is named by its shape;
    ``params`` (the YAML's schedules level) dropped."""
    parts = [prefix] if prefix else []
    node = data
    for i, key in enumerate(loc):
        child = _child(node, key)
        if isinstance(key, int):
            nxt = loc[i + 1] if i + 1 < len(loc) else None
            shape = child.get("shape") if isinstance(child, dict) else None
            if parts and parts[-1] in ("shapes", "controls") and nxt not in (None, "shape"):
                if isinstance(shape, str):
                    parts[-1] += f"[{shape}]"
        elif key == "params" and i == 1 and parts == ["schedules"]:
            pass
        elif key == "shape" and parts and parts[-1] in ("shapes", "controls"):
            pass
        elif key != "[key]":  # a bad key of a mapping: named by the mapping
            parts.append(str(key))
        node = child
    return ".".join(parts) or "spec"


def _child(node: Any, key: Any) -> Any:
    if isinstance(key, int) and isinstance(node, (list, tuple)) and -len(node) <= key < len(node):
        return as_entry(node[key])
    if isinstance(node, dict):
        return node.get(key)
    return None
