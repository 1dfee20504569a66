"""Typed YAML: a mapping read with ``yaml.safe_load``'s loader becomes a frozen dataclass.

Nothing here knows a pipeline or a study. An unknown key, a wrong type or a
missing file raises :class:`ConfigError` naming the file, the key and what was
expected. ``section.key=value`` overrides are parsed as YAML, so
``--set build.strict_dedup=true`` gives a bool.

Hostile files get one short sentence too, never a trace or a huge message:

- YAML aliases (``*name``) are refused while the file is composed
  (:class:`NoAliasLoader`, a :class:`yaml.SafeLoader`), so an alias bomb (a few
  hundred bytes expanding to billions of nodes) is refused in milliseconds;
- a file nested deeper than :data:`MAX_FLOW_DEPTH` brackets or than Python
  can recurse is one sentence, found in linear time;
- a value quoted in a message is cut to :data:`REPR_LIMIT` characters (:func:`short_repr`).
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from faerslake.errors import ConfigError

# A value quoted in an error message is cut to this many characters, then "…".
REPR_LIMIT = 80
_REPR = reprlib.Repr()
# bounded work whatever the value: 4 levels deep, a few items per container
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxset = 4, 6, 6, 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = REPR_LIMIT + 2


def short_text(text: str, limit: int = REPR_LIMIT) -> str:
    """``text`` cut to ``limit`` characters and "…" (a name or key in a message)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"


def short_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` for a message: at most ``limit`` characters and "…".

    Built with :mod:`reprlib`, so a huge or deeply nested value costs a few
    items' work, not its whole size."""
    try:
        text = _REPR.repr(value)
    except (RecursionError, MemoryError):  # pragma: no cover - reprlib bounds the depth
        text = f"<{type(value).__name__}>"
    return short_text(text, limit)


class AliasRefused(yaml.YAMLError):
    """A YAML alias (``*name``) in a configuration file."""

    def __init__(self, name: str, line: int):
        super().__init__(f"alias *{name} at line {line}")
        self.name, self.line = name, line


class NoAliasLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` whose composer refuses every alias (``*name``).

    ``safe_load`` builds an alias as a shared reference, cheap to load, but
    whatever walks the value afterwards (validation, a message, the report)
    expands it: 500 bytes of nested aliases are 10^9 nodes. Configuration
    never needs them, so the first alias stops the load."""

    def compose_node(self, parent, index):  # noqa: D102 - PyYAML API
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise AliasRefused(str(event.anchor)[:REPR_LIMIT], event.start_mark.line + 1)
        return super().compose_node(parent, index)


# Deeper than this many open brackets ([ or {) is refused before parsing.
MAX_FLOW_DEPTH = 100


class TooDeep(yaml.YAMLError):
    """Flow collections nested deeper than :data:`MAX_FLOW_DEPTH`."""


def _check_flow_depth(text: str) -> None:
    """Refuse more than :data:`MAX_FLOW_DEPTH` unclosed ``[``/``{`` at any point.

    PyYAML's scanner is quadratic in the depth of flow collections (it keeps
    one possible simple key per level and walks them at every token), so
    5,000 ``[`` take seconds and 50,000 minutes before its RecursionError.
    Brackets are counted over the raw text, quotes and comments included: a
    configuration file never comes near 100 unclosed ones."""
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                raise TooDeep(f"more than {MAX_FLOW_DEPTH} nested brackets")
        elif ch in "]}" and depth:
            depth -= 1


def load_yaml_text(text: str) -> Any:
    """``yaml.safe_load(text)`` without aliases (:class:`NoAliasLoader`) and
    without flow collections nested more than :data:`MAX_FLOW_DEPTH` deep."""
    _check_flow_depth(text)
    loader = NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


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
            f"{src}: key '{where}' should be {_type_name(tp)}, got {short_repr(value)}"
        )
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, src)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{src}: key '{where}' should be {_type_name(tp)}, got {short_repr(value)}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{where}[{i}]", src) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{src}: key '{where}' should be a mapping, got {short_repr(value)}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{src}: key '{where}' should be true/false, got {short_repr(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{src}: key '{where}' should be a whole number, got {short_repr(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{src}: key '{where}' should be a number, got {short_repr(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{src}: key '{where}' should be text, got {short_repr(value)}")
        return str(value)
    raise ConfigError(f"{src}: key '{where}' has an unsupported type")  # pragma: no cover


def _build(cls: type, data: Any, where: str, src: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{src}: {'key ' + repr(where) if where else 'the file'} should be a mapping, got {short_repr(data)}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys may be numbers
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"{src}: unknown key '{short_text(prefix + str(unknown[0]))}'; expected one of: "
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


def _read_yaml(path: Path, kind: str = "file") -> tuple[Any, bytes]:
    """The file's YAML value and its bytes; ``kind`` ("study file", "settings
    file") starts the alias and nesting messages."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        return load_yaml_text(raw.decode("utf-8")), raw
    except AliasRefused as e:
        raise ConfigError(f"{kind} {path} line {e.line}: YAML aliases (*{e.name}) are not supported; "
                          "write the value out") from None
    except (RecursionError, TooDeep):
        raise ConfigError(f"{kind} {path} is nested too deeply to read; "
                          "write it with a few levels of nesting") from None
    except (yaml.YAMLError, ValueError) as e:  # ValueError: bad UTF-8, a number of 4,300+ digits
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: is not valid YAML ({short_text(first, 200)})") from None


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
            node[parts[-1]] = load_yaml_text(raw)
        except AliasRefused:
            raise ConfigError(f"override '{short_text(item)}': YAML aliases are not supported; "
                              "write the value out") from None
        except (yaml.YAMLError, ValueError, RecursionError):
            node[parts[-1]] = raw
    return data
