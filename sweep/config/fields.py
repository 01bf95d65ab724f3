"""The value types of the spec's fields and its one error, ``SpecError``: what every part of
the spec (the schema in spec.py, the shape registry in shapes.py) declares its fields with.

Numbers are strict: no bools, no numeric strings, no NaN or infinities. An integer may be
written as a whole float (YAML's 2.0e+6); floats take integers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, Strict
from pydantic_core import PydanticCustomError

USAGE_FIELDS = ("DIR", "WANDB_API_KEY")  # command-line positionals and environment


class SpecError(ValueError):
    """A bad spec value, or a bad command-line argument (an option such as ``--results``
    or a positional such as ``DIR``: a usage error); ``str(err)`` is the one line shown to
    the user, in the same form for both: ``KIND error: FIELD=VALUE: why``."""

    def __init__(self, field_name: str, value: Any, why: str):
        self.field, self.value, self.why = field_name, value, why
        # one line, whatever the key: a YAML key may hold a newline
        shown = field_name if field_name.isprintable() else repr(field_name)[1:-1]
        usage = field_name.startswith("--") or field_name in USAGE_FIELDS
        kind = "usage" if usage else "spec"
        super().__init__(f"{kind} error: {shown}={value!r}: {why}")

    def __reduce__(self):  # picklable and copyable across Ray processes
        return (SpecError, (self.field, self.value, self.why))


# How a step's sequences are made short (docs/design.md, "Modes"): reshape (more, shorter
# rows at constant tokens), truncate (rows of l_max cut to L: fewer tokens), window (rows of
# l_max, attention limited to the last L positions), doc_buckets (rows of L cut from single
# documents, never packed across a boundary).
Mode = Literal["reshape", "truncate", "window", "doc_buckets"]
MODES = get_args(Mode)

INT_LIMIT = 2**53  # beyond: a typo, and no longer exact in JSON


def _whole(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        if abs(v) > INT_LIMIT:
            raise ValueError(f"must be at most {INT_LIMIT} in size")
        return int(v)
    return v


def as_list(v: Any) -> Any:
    """A single value where a list is expected: the one-element list."""
    return v if isinstance(v, (list, tuple)) else [v]


def unique(v: Any) -> Any:
    if len(set(v)) != len(v):
        raise ValueError("must not repeat")
    return v


def _pair(v: Any) -> Any:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError("each stage must be a [fraction, length] pair")
    return v


def _name(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
        raise ValueError("must be a non-empty name of letters, digits, '_', '.', '-'")
    return v


Int = Annotated[int, Strict(), Field(ge=-INT_LIMIT, le=INT_LIMIT), BeforeValidator(_whole)]
PosInt = Annotated[Int, Field(gt=0)]
NonNegInt = Annotated[Int, Field(ge=0)]
Seed = Annotated[Int, Field(ge=0, lt=2**32)]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PosFloat = Annotated[Float, Field(gt=0)]
NonNegFloat = Annotated[Float, Field(ge=0)]
Unit = Annotated[Float, Field(ge=0, le=1)]  # [0, 1]
Fraction = Annotated[Float, Field(ge=0, lt=1)]  # [0, 1)
Rate = Annotated[Float, Field(gt=0, le=1)]  # (0, 1]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
Name = Annotated[Str, AfterValidator(_name)]
Rates = Annotated[
    tuple[Rate, ...], BeforeValidator(as_list), Field(min_length=1), AfterValidator(unique)
]
Stage = Annotated[tuple[Rate, PosInt], BeforeValidator(_pair)]
Stages = tuple[Stage, ...]


def Grid(t: Any) -> Any:  # noqa: N802 (a type constructor)
    """A shape parameter: one value, or a list of values (a grid axis)."""
    return Annotated[list[t], BeforeValidator(as_list), Field(min_length=1), AfterValidator(unique)]


def _range(v: Any) -> Any:
    """A [low, high] pair, low <= high (one value: a fixed point)."""
    v = as_list(v)
    if isinstance(v, list) and len(v) == 1:
        v = v * 2
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        if v[0] > v[1]:
            raise ValueError("must be [low, high] with low <= high")
    return v


def Range(t: Any) -> Any:  # noqa: N802 (a type constructor)
    """A search range: [low, high] of ``t`` (or one value)."""
    return Annotated[tuple[t, t], BeforeValidator(_range)]


def OneOf(names: Callable[[], Iterable[str]]) -> Any:  # noqa: N802 (a type constructor)
    """A name from a list read when a value is checked, not when the type is made (the
    shape registry, which a test may extend): refused as a ``Literal`` of the same names
    would be, in the same words."""

    def check(v: Any) -> str:
        allowed = list(names())
        if isinstance(v, str) and v in allowed:
            return v
        quoted = [f"'{n}'" for n in allowed]
        expected = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )

    return Annotated[str, PlainValidator(check)]


def plain(obj: Any) -> Any:
    """Tuples to lists, recursively, so dicts round-trip through JSON and YAML."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj
