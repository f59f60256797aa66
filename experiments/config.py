"""Strict configuration loading: YAML mappings become frozen dataclasses, and nothing is dropped silently.

Every study builds its settings with :func:`from_mapping`. An unknown key fails with its full path and the closest
known names (``corruption.method_options.knn.kk: unknown key 'kk'. Did you mean 'k'?``), a wrong type fails with
the type the field expects, and a dataclass's own checks (``__post_init__``) fail with the section's path. Defaults
live in the dataclasses only; a YAML file may restate them.

Field types understood: ``int``, ``float`` (an integer is accepted), ``bool``, ``str``, ``Literal[...]``,
``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``Mapping[str, X]``, nested dataclasses and ``Any``. Lists become
tuples, so a loaded config is immutable and hashable where its fields are.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Study:
    ...     n_images: int = 256
    >>> from_mapping(Study, {"n_image": 10}, "study")
    Traceback (most recent call last):
    ...
    experiments.config.ConfigError: study.n_image: unknown key 'n_image'. Did you mean 'n_images'? Known: n_images
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")

CONVERT = "config_convert"
"""Field metadata: ``convert(raw value, path) -> value``, applied before the type check."""
KEYS = "config_keys"
"""Field metadata of a mapping field: the keys it may hold (a collection, or a function returning one)."""
MAPPING_KEY = "config_mapping_key"
"""Field metadata: the field is filled with the key under which the dataclass sits in a mapping, not from YAML."""


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key's path (``faults.input.gain``) and the fix."""


class UnsupportedConfigError(ConfigError):
    """A known config value that this version cannot honour (a dataset or weights it has no code to load)."""


def parsed(convert: Callable[[Any, str], Any], **kwargs: Any) -> Any:
    """A dataclass field whose raw value passes through ``convert(value, path)`` before the type check."""
    return dataclasses.field(metadata={CONVERT: convert}, **kwargs)


def keyed(
    keys: Collection[str] | Callable[[], Collection[str]],
    convert: Callable[[Any, str], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """A mapping field whose keys come from a fixed vocabulary (fault families, corruption families, ...)."""
    metadata = {KEYS: keys} if convert is None else {KEYS: keys, CONVERT: convert}
    return dataclasses.field(metadata=metadata, **kwargs)


def mapping_key(**kwargs: Any) -> Any:
    """A field holding the key of the enclosing mapping (``models.<key>``); a config cannot set it."""
    return dataclasses.field(metadata={MAPPING_KEY: True}, **kwargs)


def join(path: str, key: object) -> str:
    """``path.key`` (or ``key`` at the top level)."""
    return f"{path}.{key}" if path else str(key)


def unknown_key(key: object, known: Collection[str], path: str) -> ConfigError:
    """The error for a mapping key that is not one of ``known`` (``path`` is the mapping's), with close matches."""
    return unknown_name(key, known, join(path, key), "key")


def unknown_name(name: object, known: Collection[str], path: str, what: str = "name") -> ConfigError:
    """The error for a value at ``path`` that is not one of ``known``, with close matches."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(sorted(map(str, known))) or "(none)"
    return ConfigError(f"{path}: unknown {what} {name!r}.{hint} Known: {listed}")


def settable_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of dataclass ``cls`` that a config sets (all init fields except the mapping key)."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get(MAPPING_KEY)}


def has_default(f: dataclasses.Field) -> bool:
    """Whether a config may omit the field."""
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (calling its factory)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def allowed_keys(f: dataclasses.Field) -> tuple[str, ...] | None:
    """The vocabulary of a :func:`keyed` field, or None."""
    keys = f.metadata.get(KEYS)
    if keys is None:
        return None
    return tuple(keys() if callable(keys) else keys)


def from_mapping(cls: type[T], raw: Mapping[str, Any] | None, path: str = "", key: str | None = None) -> T:
    """Build dataclass ``cls`` from a config mapping, refusing unknown keys and wrong types.

    Args:
        cls: a (frozen) dataclass; its type hints say how each value is checked.
        raw: the mapping; ``None`` means every field takes its default.
        path: where the mapping sits in the whole config (``"faults"``), for error messages.
        key: the value of a :func:`mapping_key` field, if ``cls`` has one.

    Raises:
        ConfigError: an unknown or missing key, a wrong type, or a failed check of ``cls`` itself.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path or cls.__name__}: expected a mapping of {cls.__name__} settings, got {_shown(raw)}")
    hints = get_type_hints(cls)
    fields = settable_fields(cls)
    for name in raw:
        if name not in fields:
            raise unknown_key(name, fields, path)
    missing = [name for name, f in fields.items() if name not in raw and not has_default(f)]
    if missing:
        raise ConfigError(f"{path or cls.__name__}: missing required key(s) {', '.join(missing)}")
    values = {
        name: _field_value(f, hints[name], raw[name], join(path, name)) for name, f in fields.items() if name in raw
    }
    values |= {f.name: key for f in dataclasses.fields(cls) if f.metadata.get(MAPPING_KEY)}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{path or cls.__name__}: {err}") from err


def _field_value(f: dataclasses.Field, hint: Any, value: Any, path: str) -> Any:
    convert = f.metadata.get(CONVERT)
    if convert is not None:
        value = convert(value, path)
    keys = allowed_keys(f)
    if keys is not None and isinstance(value, Mapping):
        for name in value:
            if name not in keys:
                raise unknown_key(name, keys, path)
    return convert_value(hint, value, path)


def convert_value(hint: Any, value: Any, path: str) -> Any:
    """Check ``value`` against type ``hint`` and return it in canonical form (lists as tuples, ints as floats)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, path) if isinstance(value, Mapping) else _wrong(hint, value, path)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return convert_value(option, value, path)
            except ConfigError:
                continue
        return _wrong(hint, value, path)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint_text = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}.{hint_text}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _wrong(hint, value, path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert_value(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {describe(hint)}, got {len(value)} items")
        return tuple(convert_value(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin in (Mapping, dict) or hint is dict:
        if not isinstance(value, Mapping):
            return _wrong(hint, value, path)
        value_hint = args[1] if args else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{path}: keys must be strings, got {k!r}")
            if dataclasses.is_dataclass(value_hint) and isinstance(v, Mapping):
                out[k] = from_mapping(value_hint, v, join(path, k), key=k)
            else:
                out[k] = convert_value(value_hint, v, join(path, k))
        return out
    if hint is bool:
        return value if isinstance(value, bool) else _wrong(hint, value, path)
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _wrong(hint, value, path)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _wrong(hint, value, path)
    if hint is str:
        return value if isinstance(value, str) else _wrong(hint, value, path)
    raise TypeError(f"{path}: config fields of type {hint!r} are not supported by experiments.config")


def describe(hint: Any) -> str:
    """A type hint in words, for error messages."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of ({describe(args[0])})"
        return f"a list of exactly {len(args)} items ({', '.join(describe(a) for a in args)})"
    if origin in (Mapping, dict) or dataclasses.is_dataclass(hint):
        return "a mapping"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _wrong(hint: Any, value: Any, path: str) -> Any:
    raise ConfigError(f"{path}: expected {describe(hint)}, got {_shown(value)}")
