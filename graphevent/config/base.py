"""Typed configs from YAML: strict loading, validation with the valid choices named, dumping.

Every config section is a frozen dataclass. :func:`from_dict` builds one from a mapping
and rejects unknown keys (naming the valid ones) and values of the wrong type; fields
typed ``Literal[...]`` are checked against their choices. ``None`` values in the mapping
never override a dataclass default, so "unset" means "use the default".
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, TypeVar, get_args, get_origin

import yaml

from graphevent.errors import ConfigError

T = TypeVar("T")


class DuplicateKeyError(yaml.YAMLError):
    """A mapping gives the same key twice (YAML would silently keep the last value)."""

    def __init__(self, key: Any, lines: tuple[int, int], section: str) -> None:
        self.key, self.lines, self.section = key, lines, section
        super().__init__(self.describe())

    def describe(self, lines: bool = True) -> str:
        where = f" (lines {self.lines[0]} and {self.lines[1]})" if lines else ""
        section = f" in section {self.section}" if self.section else ""
        return f"key {self.key!r} appears twice{where}{section}"


class StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` (plain data only) that refuses a mapping key given twice.

    Raises:
        DuplicateKeyError: naming the key, both lines and the section holding it
            (``train``, ``tasks[0]``). Merge keys (``<<: *base``) may still be overridden
            by an explicit key.
    """

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        self._check_keys(node, (), set())
        return self.construct_document(node)

    def _check_keys(self, node: yaml.Node, path: tuple[str, ...], seen: set[int]) -> None:
        if id(node) in seen:  # an alias of a node already checked
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in first:
                        raise DuplicateKeyError(key, (first[key], line), ".".join(path))
                    first[key] = line
                except TypeError:  # an unhashable key: construction reports it
                    pass
                self._check_keys(value_node, (*path, str(key)), seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                parent = (*path[:-1], f"{path[-1]}[{i}]") if path else (f"[{i}]",)
                self._check_keys(item, parent, seen)


def strict_safe_load(text: str, source: str, section: tuple[str, ...] = (), lines: bool = True) -> Any:
    """``yaml.safe_load(text)`` refusing duplicate keys with :class:`ConfigError` naming ``source``.

    Args:
        source: what the text is, first in the message (a file name, ``--set a.b={...}``).
        section: the key path the text sits under (a ``--set`` value's key).
        lines: name the lines of the two keys (not for a one-line ``--set`` value).

    Other YAML errors propagate as ``yaml.YAMLError``.
    """
    try:
        return yaml.load(text, Loader=StrictLoader)
    except DuplicateKeyError as exc:
        exc.section = ".".join(p for p in (*section, exc.section) if p)
        raise ConfigError(f"{source}: {exc.describe(lines)}") from None


def check_is_file(path: Path) -> None:
    """Refuse a missing config ``path`` or one that is a directory, naming it."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; expected a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load`` semantics (plain data only) refusing a key
    given twice; errors name the file."""
    path = Path(path)
    check_is_file(path)
    try:
        data = strict_safe_load(path.read_text(), str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


# what a bare ``off`` / ``on`` in YAML means where a choice of strings is expected
YAML_SWITCH = {False: "off", True: "on"}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check (and gently coerce) ``value`` against the annotation ``tp``."""
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if isinstance(value, bool) and YAML_SWITCH[value] in args:
            value = YAML_SWITCH[value]  # YAML 1.1 reads a bare off/on as false/true: `--set train.amp=off`
        if value not in args:
            raise ConfigError(f"{where}: invalid value {value!r}; expected one of {', '.join(map(repr, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, found {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, found {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, found {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, found {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, found {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, found {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, found {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build the dataclass ``cls`` from ``data``.

    Unknown keys raise :class:`ConfigError` listing the valid keys; ``None`` values are
    dropped so the dataclass default applies; nested dataclasses are built recursively.
    After construction, a ``validate()`` method on the dataclass (if any) is called. A
    section whose class depends on its content (the ``reader:`` section, by ``format``) has a
    classmethod ``section_for(data, where)`` giving the class to build and the keys to build
    it from.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, found {data!r}")
    section_for = getattr(cls, "section_for", None)
    if callable(section_for):
        cls, data = section_for(data, where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        if value is None:
            continue
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}")
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    return obj


def to_dict(obj: Any, keep_tuples: bool = False) -> Any:
    """Plain-python (YAML/JSON-safe) view of a config dataclass (or nested structure of them).

    Args:
        keep_tuples: keep tuples as tuples (checkpoints, which rebuild dataclasses such as
            ``DatasetInfo`` field by field); by default they become lists, as in YAML.

    A dataclass with an ``as_recorded()`` method is written as that mapping (the ``reader:``
    section keeps the form dataset ids were hashed from).
    """
    as_recorded = getattr(obj, "as_recorded", None)
    if callable(as_recorded) and not isinstance(obj, type):
        obj = as_recorded()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name), keep_tuples) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple) and keep_tuples:
        return tuple(to_dict(v, keep_tuples) for v in obj)
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, keep_tuples) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v, keep_tuples) for k, v in obj.items()}
    return obj


def require_at_least_one(config: Any, where: str, *keys: str) -> None:
    """For a config's ``validate``: refuse the first field of ``keys`` below 1, naming it
    (``model.dim: 0 must be >= 1``)."""
    for key in keys:
        if getattr(config, key) < 1:
            raise ConfigError(f"{where}.{key}: {getattr(config, key)} must be >= 1")


def dump_yaml(obj: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (sorted keys are avoided: fields keep their order)."""
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``--set a.b.c=value`` into (["a","b","c"], value); the value is read as YAML scalar."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.lr=0.001")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = strict_safe_load(raw, f"--set {text}", tuple(parts), lines=False) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if value is None:  # an unset value means "the default" (from_dict drops None): say so, do not ignore it
        raise ConfigError(
            f"--set {text!r}: no value ({raw.strip() or 'empty'}); expected KEY=VALUE. "
            "To keep a key's default, leave out its --set"
        )
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the raw config mapping with ``--set`` overrides applied."""
    import copy

    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {p!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def name_override(exc: ConfigError, where: str, overrides, labels: Mapping[str, str] | None = None) -> ConfigError:
    """``exc`` reworded to name the option that supplied the bad value, if one did.

    Config errors start with the key they are about (``<where>.graph.k: ...``, or
    ``model.k: ...`` with ``where=""``); when an override set that key (the last one wins),
    the option the user typed replaces that prefix: ``--set graph.k=abc``, or the label
    ``labels`` gives the override (``{"train.batch_size=0": "--batch-size 0"}`` for an override
    a command made from its own option). The value came from the command line, not from the
    YAML file.
    """
    text = str(exc)
    for item in reversed(list(overrides or ())):
        try:
            parts, _ = parse_override(item)
        except ConfigError:
            continue
        prefix = ".".join([where, *parts] if where else parts)
        if text.startswith(prefix) and text[len(prefix) : len(prefix) + 1] in (":", ".", "["):
            return ConfigError(f"{override_label(item, labels)}{text[len(prefix):]}")
    return exc


def override_label(item: str, labels: Mapping[str, str] | None = None) -> str:
    """The override ``item`` as the user typed it: its label (``--batch-size 0``) or ``--set item``."""
    return (labels or {}).get(item) or f"--set {item}"


def build_with_overrides(build: Callable[[dict[str, Any]], T], raw: dict[str, Any], overrides, where: str,
                         labels: Mapping[str, str] | None = None) -> T:
    """``build(raw)`` with the ``--set`` style ``overrides`` applied in order (the last one wins).

    Every override is checked, also one that a later override replaces (the same key or a
    section above it: ``--set train.epochs=abc --epochs 1``) and that the built config never
    sees: the config is built again with it in place of those that replace it, and an error
    about its key is raised naming it. Errors about other keys in that trial are not raised:
    that combination never runs.

    Raises:
        ConfigError: naming the override (:func:`name_override`) when one gave the bad value.
    """
    overrides = list(overrides or ())
    try:
        out = build(apply_overrides(raw, overrides))
    except ConfigError as exc:
        raise name_override(exc, where, overrides, labels) from None
    for item, trial in replaced_overrides(overrides):
        try:
            build(apply_overrides(raw, trial))
        except ConfigError as exc:
            named = name_override(exc, where, [item], labels)
            if named is not exc:
                raise named from None
    return out


def replaced_overrides(overrides) -> list[tuple[str, list[str]]]:
    """``(override, overrides with it in place of those replacing it)`` for each override that a
    later one replaces: the same key, or a section above it (``train.epochs=abc`` then
    ``train.epochs=1``, or ``graph.k=abc`` then ``graph={k: 8}``)."""
    overrides = list(overrides)
    keys = [parse_override(item)[0] for item in overrides]
    out = []
    for i, item in enumerate(overrides):
        replaced = {j for j in range(i + 1, len(overrides)) if keys[i][: len(keys[j])] == keys[j]}
        if replaced:
            out.append((item, [o for j, o in enumerate(overrides) if j not in replaced]))
    return out
