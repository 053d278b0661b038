"""Typed, versioned artifacts: the files one stage writes and another reads, each one frozen dataclass.

Every artifact class has a schema version: `Tau`, `RunRecord`, `RunManifest` and `TrainingSummary` in
`neurocascade.hierarchy.artifacts`; `Sidecar` and `Agreement` in `neurocascade.edge.manifest` (beside `ExportManifest`, which keeps its own
checks); `EvalReport` in `neurocascade.eval.report_file`; `BenchReport` in `neurocascade.edge.bench`; `Ledger` in `neurocascade.results.chain`. Each has one `to_json` / `from_json` pair that the writer and the reader share: `write(path)`
checks its own output with `from_json` before it writes, `read(path)` parses with it. Whatever is missing,
unknown, mistyped or out of range (τ outside [0, 1], a NaN, a negative count, labels that are not the known
classes) is an `ArtifactError`, one line naming the file and the key, which the CLI prints without a traceback.

A file without a version field is version 1: the format the repository wrote before artifacts were typed.

This module is the toolkit (`Fields` reads one JSON object key by key; the small checkers below validate one
value). Standard library only: `predict` imports it on a device.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, TypeVar

from neurocascade.errors import UserError
from neurocascade.io import write_json

A = TypeVar("A", bound="Artifact")
Check = Callable[[Any], Any]
_MISSING = object()


class ArtifactError(UserError):
    """A file another stage wrote does not hold what its artifact class requires (one line: file and key)."""


class Invalid(ValueError):
    """Raised by a checker with the reason; containers prepend the nested key, `Fields` adds the file and key."""

    def __init__(self, why: str, path: tuple[str, ...] = (), value: Any = _MISSING):
        super().__init__(why)
        self.why, self.path, self.value = why, path, value

    def inside(self, key: Any, item: Any) -> "Invalid":
        return Invalid(self.why, (str(key), *self.path), item if self.value is _MISSING else self.value)


class Fields:
    """One JSON object read key by key: `take` removes a key and checks its value, `done` refuses the rest."""

    def __init__(self, obj: Any, source: str | Path, where: str = ""):
        self.source, self.where = str(source), where
        if not isinstance(obj, dict):
            raise ArtifactError(
                f"{self.source}: {where.rstrip('.') or 'the file'}: expected a JSON object, found {type(obj).__name__}"
            )
        self._left = dict(obj)

    def error(self, key: str, why: str) -> ArtifactError:
        return ArtifactError(f"{self.source}: {self.where}{key}: {why}")

    def has(self, key: str) -> bool:
        return key in self._left

    def take(self, key: str, check: Check, default: Any = _MISSING) -> Any:
        """The checked value of `key` (`default` when absent; without one a missing key is an error)."""
        if key not in self._left:
            if default is _MISSING:
                raise self.error(key, "missing (required)")
            return default
        value = self._left.pop(key)
        try:
            return check(value)
        except Invalid as exc:
            shown = value if exc.value is _MISSING else exc.value
            why = exc.why if shown is _NO_VALUE else f"{_short(shown)}, {exc.why}"
            raise self.error(".".join((key, *exc.path)), why) from None

    def done(self) -> None:
        if self._left:
            raise self.error(sorted(self._left)[0], "unknown key (written by another program or version?)")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def version(fields: Fields, key: str, supported: Iterable[int]) -> int:
    """The file's schema version under `key`; absent means 1, the format before versions were written."""
    supported = tuple(supported)

    def check(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v not in supported:
            raise Invalid(f"this program reads versions {', '.join(map(str, supported))}")
        return v

    return fields.take(key, check, 1)


# ------------------------------------------------------------------------------------------------ checkers


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def text(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid("expected a string")
    return v


def nonempty(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise Invalid("expected a non-empty string")
    return v


def flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid("expected true or false")
    return v


def number(v: Any) -> float | int:
    if not _is_number(v) or not math.isfinite(v):
        raise Invalid("expected a finite number")
    return v


def probability(v: Any) -> float | int:
    if not _is_number(v) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise Invalid("expected a finite number in [0, 1]")
    return v


def seconds(v: Any) -> float | int:
    if not _is_number(v) or not math.isfinite(v) or v < 0:
        raise Invalid("expected a finite number of seconds ≥ 0")
    return v


def count(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise Invalid("expected a count (an integer ≥ 0)")
    return v


def integer(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise Invalid("expected an integer")
    return v


def positive(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise Invalid("expected a positive integer")
    return v


def one_of(*allowed: Any) -> Check:
    def check(v: Any) -> Any:
        if v not in allowed or isinstance(v, bool) != any(isinstance(a, bool) for a in allowed if a == v):
            raise Invalid(f"expected one of {', '.join(map(repr, allowed))}")
        return v

    return check


def optional(check: Check) -> Check:
    """None, or what `check` accepts (a value that is recorded as "not there" rather than left out)."""
    return lambda v: None if v is None else check(v)


def list_of(check: Check) -> Check:
    def each(v: Any) -> list:
        if not isinstance(v, list):
            raise Invalid("expected a list")
        out = []
        for k, item in enumerate(v):
            try:
                out.append(check(item))
            except Invalid as exc:
                raise exc.inside(k, item) from None
        return out

    return each


def map_of(check: Check) -> Check:
    """An object of string keys to values `check` accepts."""

    def each(v: Any) -> dict:
        if not isinstance(v, dict):
            raise Invalid("expected an object")
        out = {}
        for key, item in v.items():
            try:
                out[key] = check(item)
            except Invalid as exc:
                raise exc.inside(key, item) from None
        return out

    return each


# Label spellings of earlier files, read as today's: the gate's first class was "tumour" beside the data's
# "no_tumor" until 2026-12-02; one spelling per label now, the data folders' one.
LABEL_ALIASES = {"tumour": "tumor"}


def permutation_of(known: Iterable[str], exact_order: bool = False) -> Check:
    """A list holding each of `known` exactly once (in that order when `exact_order`), older spellings
    (`LABEL_ALIASES`) read as today's."""
    known = list(known)

    def check(v: Any) -> list[str]:
        if isinstance(v, list):
            v = [LABEL_ALIASES.get(x, x) if isinstance(x, str) else x for x in v]
        if (
            not isinstance(v, list)
            or sorted(map(str, v)) != sorted(known)
            or len(set(v)) != len(v)
            or (exact_order and v != known)
        ):
            raise Invalid(f"expected exactly {known}{' in this order' if exact_order else ' (any order)'}")
        return list(v)

    return check


def json_value(v: Any) -> Any:
    """Any JSON value whose numbers are finite (a nested block passed through as it is, deep-copied)."""
    if v is None or isinstance(v, (str, bool)):
        return v
    if _is_number(v):
        return number(v)
    if isinstance(v, list):
        return list_of(json_value)(v)
    if isinstance(v, dict):
        return map_of(json_value)(v)
    raise Invalid("not a JSON value")


class _Nested(Fields):
    """`Fields` of a nested object: its errors are `Invalid` with the key path, for the enclosing `take`."""

    def __init__(self, obj: Any):
        if not isinstance(obj, dict):
            raise Invalid("expected an object")
        super().__init__(obj, "")

    def error(self, key: str, why: str) -> Invalid:  # type: ignore[override]
        return Invalid(why, tuple(key.split(".")), _NO_VALUE)


_NO_VALUE = object()


def record(read: Callable[[Fields], Any]) -> Check:
    """A nested object read by `read(fields)`; `read` takes its keys and the rest is refused as unknown."""

    def check(v: Any) -> Any:
        fields = _Nested(v)
        value = read(fields)
        fields.done()
        return value

    return check


# ------------------------------------------------------------------------------------------------ artifacts


def read_json_file(path: str | Path, what: str) -> Any:
    """The parsed JSON of `path`; missing or unreadable is one line naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArtifactError(f"{path}: not a readable {what} ({first})") from None


class Artifact:
    """Base of the artifact dataclasses: `read` and `write` around the class's `from_json` / `to_json`."""

    WHAT: ClassVar[str] = "artifact"

    def to_json(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_json(cls: type[A], obj: Any, source: str | Path) -> A:
        raise NotImplementedError

    @classmethod
    def read(cls: type[A], path: str | Path) -> A:
        return cls.from_json(read_json_file(path, cls.WHAT), path)

    @classmethod
    def read_if_exists(cls: type[A], path: str | Path) -> A | None:
        return cls.read(path) if Path(path).is_file() else None

    def write(self, path: str | Path) -> None:
        """Write atomically, after checking that the reader accepts what is written."""
        obj = self.to_json()
        self.from_json(json.loads(json.dumps(obj)), path)
        write_json(path, obj)
