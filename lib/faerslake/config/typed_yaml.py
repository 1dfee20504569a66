"""Typed YAML: a mapping read with ``yaml.safe_load`` becomes a frozen dataclass.

Nothing here knows a pipeline or a study. An unknown key, a wrong type or a
missing file raises :class:`ConfigError` naming the file, the key and what was
expected. ``section.key=value`` overrides are parsed as YAML, so
``--set build.strict_dedup=true`` gives a bool.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from faerslake.errors import ConfigError


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {str: "text", int: "a whole number", float: "a number", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, where: str, src: str) -> Any:
    """Check ``value`` against the annotation ``tp``; build dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where, src)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(
            f"{src}: key '{where}' should be {_type_name(tp)}, got {value!r}"
        )
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, src)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{src}: key '{where}' should be {_type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{where}[{i}]", src) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{src}: key '{where}' should be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{src}: key '{where}' should be true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{src}: key '{where}' should be a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{src}: key '{where}' should be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{src}: key '{where}' should be text, got {value!r}")
        return str(value)
    raise ConfigError(f"{src}: key '{where}' has an unsupported type")  # pragma: no cover


def _build(cls: type, data: Any, where: str, src: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{src}: {'key ' + repr(where) if where else 'the file'} should be a mapping, got {data!r}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"{src}: unknown key '{prefix}{unknown[0]}'; expected one of: "
            + ", ".join(sorted(fields))
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key, src)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{src}: missing required key '{key}' ({_type_name(hints[name])})")
    return cls(**kwargs)


def _read_yaml(path: Path) -> tuple[Any, bytes]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        return yaml.safe_load(raw.decode("utf-8")), raw
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: is not valid YAML ({first})") from None


def apply_overrides(data: dict, overrides: list[str] | None, src: str) -> dict:
    """Apply ``section.key=value`` overrides to raw YAML data (value parsed as YAML)."""
    data = dict(data or {})
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' should look like section.key=value")
        dotted, _, raw = item.partition("=")
        parts = dotted.strip().split(".")
        node = data
        for p in parts[:-1]:
            child = node.get(p)
            child = dict(child) if isinstance(child, dict) else {}
            node[p] = child
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[parts[-1]] = raw
    return data
