"""Table-driven validation shared by the config loader and the carrier profiles.

A *section* is a frozen dataclass plus a spec: a mapping from each field name
to a rule. A rule is a `Check` (a callable turning the raw YAML value into the
field value, raising `Invalid`), a `OneOf` (alternative keys such as
``password`` / ``password_file`` / ``password_env``) or a `Filled` (absent
values are filled in by the section's post hook). Defaults come from the
dataclass itself, so each default is written once. Every problem is recorded
with its key path and loading carries on, so one run reports all of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, NoReturn, Self, TypeVar

import yaml
from typing_extensions import override

MASK = "****"
T = TypeVar("T")
V = TypeVar("V")


class ConfigError(ValueError):
    """Invalid configuration: `errors` holds one ``path: problem`` line each."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__("\n".join(self.errors))

    @override
    def __str__(self) -> str:
        return "\n".join(self.errors)


class Invalid(Exception):
    """Raised by a check: the value at the current path is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Reported(Exception):
    """Raised by a nested check whose errors are already recorded."""


class Masked(Generic[V]):
    """Immutable holder of a secret value: repr and str never show it."""

    __slots__ = ("_value",)
    _value: V

    def __init__(self, value: V) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> V:
        """Return the secret value itself."""
        return self._value

    @override
    def __repr__(self) -> str:
        return MASK

    @override
    def __str__(self) -> str:
        return repr(self)

    @override
    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @override
    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @override
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._value == other.reveal()

    @override
    def __hash__(self) -> int:
        return hash(self._value)

    def __deepcopy__(self, memo: object) -> Self:
        # Immutable: copies (e.g. dataclasses.asdict) share the instance.
        return self

    @override
    def __reduce__(self) -> tuple[type[Self], tuple[V]]:
        return (type(self), (self._value,))


class Secret(Masked[str]):
    """A password or token: ``repr``/``str`` give ``****``; `reveal` returns it."""

    __slots__ = ()


class TerminalKeys(Masked[tuple[bytes, ...]]):
    """A terminal's HMAC keys (one, or two during a rotation), masked in repr."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._value)

    @override
    def __repr__(self) -> str:
        return f"TerminalKeys({', '.join(MASK for _ in self._value)})"


@dataclasses.dataclass(slots=True)
class Ctx:
    """What a load needs besides the data: the error list and secret sources."""

    base_dir: Path
    environ: Mapping[str, str]
    errors: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class Where:
    """A key path inside the document being validated."""

    ctx: Ctx
    path: str

    def key(self, name: str) -> Where:
        """Return the path of `name` inside this mapping."""
        return Where(self.ctx, f"{self.path}.{name}" if self.path else name)

    def item(self, index: int) -> Where:
        """Return the path of list item `index`."""
        return Where(self.ctx, f"{self.path}[{index}]")

    def error(self, message: str) -> None:
        """Record a problem at this path."""
        self.ctx.errors.append(f"{self.path}: {message}" if self.path else message)


Check = Callable[[object, Where], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class OneOf:
    """Alternative keys for one field: exactly one may be given."""

    alternatives: Mapping[str, Check]
    required: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Filled:
    """A field whose absent value the section's post hook fills in."""

    check: Check


Rule = Check | OneOf | Filled
Spec = Mapping[str, Rule]
Post = Callable[[dict[str, Any], Mapping[str, object], Where], None]


def show(value: object) -> str:
    """Describe a value for an error message, in YAML terms and briefly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def kind(value: object) -> str:
    """Name a value's YAML type without showing it (for secrets)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return show(value) if value is None or isinstance(value, list | dict) else "text"


def build(
    cls: type[T], raw: object, where: Where, spec: Spec, post: Post | None = None
) -> T | None:
    """Validate mapping `raw` against `spec` and return a `cls`, or None on error."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where.error(f"must be a mapping, got {show(raw)}")
        return None
    before = len(where.ctx.errors)
    known = [
        alias
        for name, rule in spec.items()
        for alias in (rule.alternatives if isinstance(rule, OneOf) else (name,))
    ]
    for key in raw:
        if not isinstance(key, str):
            where.error(f"keys must be text, got {show(key)}")
        elif key not in known:
            where.key(key).error(unknown_key(key, known))
    defaults = _defaults(cls)
    values: dict[str, Any] = {}
    for name, rule in spec.items():
        if isinstance(rule, OneOf):
            # An explicit null counts as not given (``token:`` left empty).
            given = [a for a in rule.alternatives if raw.get(a) is not None]
            names = ", ".join(rule.alternatives)
            for extra in given[1:]:
                where.key(extra).error(
                    f"conflicts with {given[0]}: give exactly one of {names}"
                )
            if len(given) > 1:
                continue
            if not given:
                if rule.required:
                    where.key(name).error(f"required (give one of {names})")
                else:
                    values[name] = defaults[name]
                continue
            key, check = given[0], rule.alternatives[given[0]]
        elif name not in raw:
            if name in defaults:
                values[name] = defaults[name]
            elif not isinstance(rule, Filled):
                where.key(name).error("required")
            continue
        else:
            key, check = name, rule.check if isinstance(rule, Filled) else rule
        at = where.key(key)
        try:
            values[name] = check(raw[key], at)
        except Invalid as exc:
            at.error(exc.message)
        except Reported:
            pass
    if post is not None:
        post(values, raw, where)
    if len(where.ctx.errors) > before:
        return None
    return cls(**values)


def _defaults(cls: type[object]) -> dict[str, object]:
    """Return each dataclass field's default value, by name."""
    result: dict[str, object] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.default is not dataclasses.MISSING:
            result[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            result[field.name] = field.default_factory()
    return result


def unknown_key(key: str, known: Sequence[str]) -> str:
    """Return the message for an unknown key, with a suggestion when one is close."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(known)})"


def section(cls: type[T], spec: Spec, post: Post | None = None) -> Check:
    """Return a check that builds a nested section (null means all defaults)."""

    def check(value: object, where: Where) -> T:
        result = build(cls, value, where, spec, post)
        if result is None:
            raise Reported
        return result

    return check


def list_of(
    item: Check,
    *,
    min_len: int = 0,
    max_len: int | None = None,
    unique: str | None = None,
    what: str = "items",
) -> Check:
    """Return a check for a list of `item` values, returned as a tuple.

    `unique` names the attribute that must differ between items ("" for the
    item itself); a repeat is reported on the later item's path.
    """

    def check(value: object, where: Where) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise Invalid(f"must be a list of {what}, got {show(value)}")
        if max_len is not None and not min_len <= len(value) <= max_len:
            raise Invalid(f"must list {min_len} to {max_len} {what}, got {len(value)}")
        if len(value) < min_len:
            raise Invalid(f"must list at least {min_len} of {what}, got {len(value)}")
        before = len(where.ctx.errors)
        result: list[Any] = []
        seen: dict[object, int] = {}
        for index, raw in enumerate(value):
            at = where.item(index)
            try:
                converted = item(raw, at)
            except Invalid as exc:
                at.error(exc.message)
                continue
            except Reported:
                continue
            result.append(converted)
            if unique is not None:
                mark = getattr(converted, unique) if unique else converted
                target = at.key(unique) if unique else at
                if mark in seen:
                    first = where.item(seen[mark])
                    target.error(f"duplicate {show(mark)} (already at {first.path})")
                else:
                    seen[mark] = index
        if len(where.ctx.errors) > before:
            raise Reported
        return tuple(result)

    return check


def optional(check: Check) -> Check:
    """Return a check that also accepts null (None)."""

    def wrapped(value: object, where: Where) -> Any:
        return None if value is None else check(value, where)

    return wrapped


def boolean(value: object, where: Where) -> bool:
    """Accept only YAML booleans."""
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {show(value)}")
    return value


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    """Return a check for an integer in [lo, hi] (a YAML boolean is not one)."""
    if lo == 1 and hi is None:
        wanted = "a positive integer"
    elif lo is not None and hi is not None:
        wanted = f"an integer from {lo} to {hi}"
    elif lo is not None:
        wanted = f"an integer of at least {lo}"
    else:
        wanted = "an integer"

    def check(value: object, where: Where) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
        ):
            raise Invalid(f"must be {wanted}, got {show(value)}")
        return value

    return check


def number(
    *, gt: float | None = None, ge: float | None = None, le: float | None = None
) -> Check:
    """Return a check for a finite number with the given bounds, as a float."""
    bounds = [
        f"{word} {limit:g}"
        for word, limit in (("above", gt), ("at least", ge), ("at most", le))
        if limit is not None
    ]
    if gt == 0 and ge is None and le is None:
        wanted = "a positive number"
    elif ge is not None and le is not None and gt is None:
        wanted = f"a number from {ge:g} to {le:g}"
    elif ge is not None and gt is None and le is None:
        wanted = f"a number of at least {ge:g}"
    else:
        wanted = " ".join(["a number", " and ".join(bounds)]).strip()

    def check(value: object, where: Where) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"must be {wanted}, got {show(value)}")
        number = float(value)
        if (
            not math.isfinite(number)
            or (gt is not None and number <= gt)
            or (ge is not None and number < ge)
            or (le is not None and number > le)
        ):
            raise Invalid(f"must be {wanted}, got {show(value)}")
        return number

    return check


def text(
    *,
    max_len: int | None = None,
    min_len: int = 1,
    pattern: str | None = None,
    wanted: str = "",
    reason: str = "",
) -> Check:
    """Return a check for a string, optionally matching `pattern` (described by
    `wanted`) or limited to `max_len` characters (`reason` says why)."""
    regex = re.compile(pattern) if pattern else None

    def check(value: object, where: Where) -> str:
        if not isinstance(value, str):
            hint = " (quote it in YAML)" if isinstance(value, int | float) else ""
            raise Invalid(f"must be a string{hint}, got {show(value)}")
        if regex is not None and not regex.fullmatch(value):
            raise Invalid(f"must be {wanted}, got {show(value)}")
        if len(value) < min_len:
            raise Invalid("must not be empty")
        if max_len is not None and len(value) > max_len:
            raise Invalid(
                f"must be at most {max_len} characters{reason}, got {len(value)}"
            )
        return value

    return check


def choice(*options: str) -> Check:
    """Return a check for one of a fixed set of strings."""

    def check(value: object, where: Where) -> str:
        if not isinstance(value, str) or value not in options:
            raise Invalid(f"must be one of {', '.join(options)}, got {show(value)}")
        return value

    return check


def endpoint(*kinds: str) -> Check:
    """Return a check for a Twisted endpoint string whose type is one of `kinds`."""

    def check(value: object, where: Where) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be an endpoint string, got {show(value)}")
        prefix, colon, rest = value.partition(":")
        if prefix not in kinds or not colon or not rest:
            types = ", ".join(f"{k}:" for k in kinds)
            raise Invalid(f"must be an endpoint string ({types}...), got {show(value)}")
        return value

    return check


def sourced(base: str, convert: Callable[[str], Any], *, required: bool) -> OneOf:
    """Return the rule for a value given inline (`base`), in a file named by
    ``<base>_file`` (relative to the config's folder) or in the environment
    variable named by ``<base>_env`` (surrounding whitespace stripped from both).

    `convert` validates the text (raising `Invalid` without echoing it) and
    returns the field value.
    """

    def inline(value: object, where: Where) -> Any:
        if not isinstance(value, str):
            raise Invalid(f"must be a string (quote it in YAML), got {kind(value)}")
        return convert(value)

    def from_file(value: object, where: Where) -> Any:
        if not isinstance(value, str) or not value:
            raise Invalid(f"must be a file path, got {show(value)}")
        path = where.ctx.base_dir / value
        try:
            content = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise Invalid(f"cannot read {str(path)!r}: {reason}") from None
        try:
            return convert(content)
        except Invalid as exc:
            raise Invalid(f"{exc.message} (in {str(path)!r})") from None

    def from_env(value: object, where: Where) -> Any:
        if not isinstance(value, str) or not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_]*", value
        ):
            raise Invalid(f"must be an environment variable name, got {show(value)}")
        if value not in where.ctx.environ:
            raise Invalid(f"environment variable {value} is not set")
        try:
            return convert(where.ctx.environ[value].strip())
        except Invalid as exc:
            raise Invalid(f"{exc.message} (in environment variable {value})") from None

    return OneOf(
        {base: inline, f"{base}_file": from_file, f"{base}_env": from_env}, required
    )


def secret(
    base: str, *, required: bool, max_len: int | None = None, reason: str = ""
) -> OneOf:
    """Return the rule for a `Secret` given as `base`, ``base_file`` or ``base_env``."""

    def convert(value: str) -> Secret:
        if not value:
            raise Invalid("must not be empty")
        if max_len is not None and len(value) > max_len:
            raise Invalid(
                f"must be at most {max_len} characters{reason}, got {len(value)}"
            )
        return Secret(value)

    return sourced(base, convert, required=required)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys instead of keeping the last."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    @override
    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            mark = key_node.start_mark
            if isinstance(key, str | int | float | bool) and key in seen:
                self.duplicates.append(
                    f"line {mark.line + 1}, column {mark.column + 1}: duplicate key "
                    f"{show(key)} (first at line {seen[key]})"
                )
            elif isinstance(key, str | int | float | bool):
                seen[key] = mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(source: str) -> object:
    """Parse one YAML document with safe types only.

    Raises `ConfigError` with line and column for syntax errors and duplicate keys.
    """
    loader = _StrictLoader(source)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{where}{problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(loader.duplicates)
    return data
