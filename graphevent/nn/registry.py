"""Models by name: ``@register_model("edgeconv_ae")`` and ``build_model(cfg, info, tasks)``;
encoders by name: ``@register_encoder("edgeconv")`` and ``build_encoder(name, info, config)``.

A model is always built from its registered name and a mapping of keyword arguments
(the experiment YAML's ``model:`` section), never imported from a path in a config.
Input sizes come from the dataset's :class:`DatasetInfo`.

An encoder is an ``nn.Module`` that turns a batch of events into node tokens and a pooled
embedding (the contract: :data:`ENCODER_CONTRACT`, checked when it registers); registering
it under a name makes it available to every model that takes encoders by name
(``multitask``'s ``encoders: [...]``, ``contrastive``'s and ``foldingnet_ae``'s ``encoder``).
Nothing in the contract is about decoders: autoencoders and other objectives compose encoders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from graphevent.config.data import DEFAULT_K
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError

_REGISTRY: dict[str, type] = {}
_ENCODERS: dict[str, type] = {}

#: the encoder contract: method -> its leading parameters (after self); any further ones need
#: defaults. Besides: ``config_class`` (a dataclass of the encoder's settings; its section in a
#: ``model:`` mapping is read by :func:`section_class`), ``__init__(info, config)``, ``out_dim``
#: (token size D, set by ``__init__``) and ``not_exportable`` (why it has no padded form for
#: export; empty when it has one).
#: ``forward(batch)`` returns ``(node tokens (N, D), pooled (B, D))``, token ``i`` belonging to
#: node ``i`` of the batch. Optional: ``forward_padded(features (B, M, F), positions (B, M, 2),
#: mask (B, M)) -> (tokens (B, M, D), pooled (B, D))`` compiling with TorchScript, the encoder's
#: one path (``forward`` pads the batch, :func:`graphevent.nn.batch.padded_nodes`, runs it and
#: keeps the valid tokens; mark ``forward`` ``@torch.jit.unused``): such an encoder exports.
ENCODER_CONTRACT = {
    "__init__": ("info", "config"),
    "forward": ("batch",),
}


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator adding a :class:`~graphevent.nn.models.base.GraphModel` under ``name``."""

    def wrap(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def register_encoder(name: str) -> Callable[[type], type]:
    """Class decorator adding an encoder module under ``name`` (see :data:`ENCODER_CONTRACT`).

    Raises:
        TypeError: the class is no ``nn.Module``, has no ``config_class``, or its ``__init__`` or
            ``forward`` takes other leading parameters than the contract's (or extra ones
            without defaults).
    """
    import inspect

    from torch import nn

    def wrap(cls: type) -> type:
        if name in _ENCODERS and _ENCODERS[name] is not cls:
            raise ValueError(f"encoder name {name!r} is already registered by {_ENCODERS[name].__name__}")
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)) or not hasattr(cls, "config_class"):
            raise TypeError(f"encoder {name!r}: {getattr(cls, '__name__', cls)} must be an nn.Module with a config_class")
        for method, lead in ENCODER_CONTRACT.items():
            params = list(inspect.signature(getattr(cls, method)).parameters.values())[1:]
            names = tuple(p.name for p in params[: len(lead)])
            extra = [p.name for p in params[len(lead):] if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            if names != lead or extra:
                raise TypeError(
                    f"encoder {name!r}: {cls.__name__}.{method} takes {tuple(p.name for p in params)}; "
                    f"the encoder contract is {method}{lead} (+ parameters with defaults)"
                )
        cls.encoder_name = name
        cls.not_exportable = getattr(cls, "not_exportable", "")
        _ENCODERS[name] = cls
        return cls

    return wrap


def build_encoder(name: str, info: DatasetInfo, config: Any = None, where: str = "model.encoder"):
    """The registered encoder ``name`` for dataset ``info`` (``config``: its ``config_class``
    instance, default settings if ``None``).

    Raises:
        ConfigError: ``name`` is not registered (lists the registered encoders).
    """
    encoders = list_encoders()
    if name not in encoders:
        raise ConfigError(f"{where}: unknown encoder {name!r}; registered encoders: {', '.join(encoders)}")
    cls = encoders[name]
    return cls(info, cls.config_class() if config is None else config)


def _ensure_loaded() -> None:
    import graphevent.nn.encoders  # noqa: F401  (importing registers the built-in encoders)
    import graphevent.nn.models  # noqa: F401  (and models)


def list_models() -> dict[str, type]:
    """Registered models, name -> class, sorted by name."""
    _ensure_loaded()
    return dict(sorted(_REGISTRY.items()))


def list_encoders() -> dict[str, type]:
    """Registered encoders, name -> encoder module class, sorted by name."""
    _ensure_loaded()
    return dict(sorted(_ENCODERS.items()))


def autoencoder_for(name: str) -> type | None:
    """The registered model that reconstructs encoder ``name`` with a decoder of its own (its
    class's ``reconstructs``: ``masked_gt_ae`` for ``masked_gt``), or ``None``: what
    ``multitask``'s auxiliary reconstruction trains."""
    found = [cls for cls in list_models().values() if getattr(cls, "reconstructs", "") == name]
    return found[0] if found else None


def section_class(name: str) -> type:
    """The config class of encoder ``name``'s section in the models that compose it: its own
    autoencoder's (:func:`autoencoder_for`: the encoder's settings and its decoder's, which
    ``multitask``'s auxiliary reconstruction reads) if it has one, else its ``config_class``."""
    autoencoder = autoencoder_for(name)
    return autoencoder.config_class if autoencoder is not None else list_encoders()[name].config_class


def config_with_encoder_sections(cls: type, data: Mapping[str, Any], where: str, names: Callable[[Any], Sequence[str]]):
    """Strict loading of the ``model:`` mapping of a model that takes encoders by name: the
    sections named after a registered encoder (``masked_gt: {...}``) become each encoder's
    config object (:func:`section_class`) in ``encoder_configs``, the other
    keys the fields of ``cls``.

    Args:
        names: the encoders the loaded config uses (``config -> [names]``); sections of other
            encoders are kept, unused, so that a saved config reads back as it was written.

    Raises:
        ConfigError: a key that is neither a field nor an encoder's section (lists both), an
            encoder that is not registered, or a section with unknown or invalid keys.
    """
    import dataclasses

    from graphevent.config.base import from_dict

    encoders = list_encoders()
    data = dict(data)
    sections = {n: data.pop(n) for n in list(data) if n in encoders}
    fields = [f.name for f in dataclasses.fields(cls) if f.name != "encoder_configs"]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(sorted(fields))}, or an encoder's section: {', '.join(encoders)}"
        )
    config = from_dict(cls, data, where)
    used = list(names(config))
    missing = [n for n in used if n not in encoders]
    if missing:
        raise ConfigError(f"{where}.encoders: unknown encoder {missing[0]!r}; registered encoders: {', '.join(encoders)}")
    configs = {
        n: from_dict(section_class(n), sections.get(n) or {}, f"{where}.{n}")
        for n in [*used, *(n for n in sections if n not in used)]
    }
    return dataclasses.replace(config, encoder_configs=configs)


def mapping_with_encoder_sections(config: Any) -> dict[str, Any]:
    """The ``model:`` keys (without ``name``) that :func:`config_with_encoder_sections` reads
    back: the fields, then one section per encoder."""
    from graphevent.config.base import to_dict

    out = to_dict(config)
    out.update(out.pop("encoder_configs"))
    return out


def build_model(cfg: Mapping[str, Any], info: DatasetInfo, tasks: Sequence[Any] | None = None):
    """Build a registered model.

    Args:
        cfg: ``{"name": <registered name>, **kwargs}``; kwargs are the fields of the
            model's config dataclass (unset ones keep their defaults).
        info: the dataset (input sizes, classes, targets, statistics).
        tasks: :class:`~graphevent.nn.tasks.TaskConfig` list for task-head models
            (``None``: the model's default tasks); ignored by autoencoders.

    Raises:
        ConfigError: unknown name (lists the known ones), unknown or invalid kwargs
            (lists the valid ones).
    """
    models = list_models()
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"model: expected a mapping with a 'name' key, found {cfg!r}")
    name = cfg.get("name")
    if name not in models:
        raise ConfigError(f"model.name: unknown model {name!r}; registered models: {', '.join(models)}")
    cls = models[name]
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    config = cls.config_from_dict(kwargs, "model")
    if cls.supports_tasks:
        return cls(info, config, tasks=tasks)
    return cls(info, config)


def default_info() -> DatasetInfo:
    """The dataset description used when none is given (``graphevent models`` without ``--data``):
    3 channel features (tracks, ecal, hcal), 2 classes (quark, gluon), targets m0 and pt."""
    return DatasetInfo(
        node_features=["tracks", "ecal", "hcal"],
        classes=["quark", "gluon"],
        targets=["m0", "pt"],
        k=DEFAULT_K,
    )


#: registry_summary() for default_info(), written by scripts/update_models_summary.py (a test
#: checks it is current): ``graphevent models`` reads it without importing torch
SUMMARY_CACHE = Path(__file__).resolve().parent / "models" / "summary.json"
#: the markers around the generated tables in docs/models.md (:func:`summary_markdown`)
DOC_TABLES = {"models": ("<!-- models table: generated by scripts/update_models_summary.py -->", "<!-- end of models table -->"),
              "encoders": ("<!-- encoders table: generated by scripts/update_models_summary.py -->", "<!-- end of encoders table -->")}


def model_summaries(info: DatasetInfo | None = None, packaged_only: bool = False) -> list[dict[str, Any]]:
    """One row per registered model: name, class, parameters (default config, default
    tasks), capabilities and the first line of its docstring (``packaged_only``: the
    models of ``graphevent.nn.models``, not ones registered by user code or tests)."""
    info = default_info() if info is None else info
    rows = []
    for name, cls in list_models().items():
        if packaged_only and not cls.__module__.startswith("graphevent.nn.models."):
            continue
        model = build_model({"name": name}, info)
        rows.append({"name": name, "class": cls.__name__, "parameters": model.num_parameters(), "pretrain": cls.supports_pretrain,
                     "tasks": cls.supports_tasks, "encoders": list(model.encoder_modules()), "description": first_doc_line(cls)})
    return rows


def encoder_summaries(packaged_only: bool = False) -> list[dict[str, Any]]:
    """One row per registered encoder: name, class, its own autoencoder (``""``: none), why it
    cannot export (``""``: it can) and the first line of its docstring (``packaged_only``: the
    encoders of ``graphevent.nn.encoders``)."""
    rows = []
    for name, cls in list_encoders().items():
        if packaged_only and not cls.__module__.startswith("graphevent.nn.encoders."):
            continue
        autoencoder = autoencoder_for(name)
        rows.append({"name": name, "class": cls.__name__, "autoencoder": autoencoder.name if autoencoder is not None else "",
                     "not_exportable": cls.not_exportable, "description": first_doc_line(cls)})
    return rows


def first_doc_line(cls: type) -> str:
    """The first line of ``cls``'s docstring (``""`` without one): its description in the tables."""
    return next(iter((cls.__doc__ or "").strip().splitlines()), "")


def registry_summary(info: DatasetInfo | None = None, packaged_only: bool = False) -> dict[str, list[dict[str, Any]]]:
    """``{"models": model_summaries(...), "encoders": encoder_summaries(...)}``: what
    ``graphevent models`` shows and docs/models.md tabulates."""
    return {"models": model_summaries(info, packaged_only), "encoders": encoder_summaries(packaged_only)}


def model_stages(row: Mapping[str, Any]) -> str:
    """The stages a :func:`model_summaries` row trains in (``pretrain`` / ``finetune, supervised``)."""
    return ", ".join(s for s, ok in (("pretrain", row["pretrain"]), ("finetune, supervised", row["tasks"])) if ok)


def summary_markdown(summary: Mapping[str, Any]) -> dict[str, str]:
    """The Markdown tables of a :func:`registry_summary` (``models`` and ``encoders``), as
    docs/models.md holds them between the :data:`DOC_TABLES` markers."""
    models = ["| name | what | stages | encoders | parameters |", "|---|---|---|---|---:|"]
    for r in summary["models"]:
        encoders = ", ".join(f"`{e}`" for e in r["encoders"]) or "-"
        models.append(f"| `{r['name']}` | {r['description']} | {model_stages(r)} | {encoders} | {r['parameters']:,} |")
    encoders = ["| encoder | module | what | own autoencoder | export |", "|---|---|---|---|---|"]
    for r in summary["encoders"]:
        export = f"no: {r['not_exportable']}" if r["not_exportable"] else "yes"
        own = f"`{r['autoencoder']}`" if r["autoencoder"] else "-"
        encoders.append(f"| `{r['name']}` | `{r['class']}` | {r['description']} | {own} | {export} |")
    return {key: "\n".join(lines).replace("``", "`") for key, lines in (("models", models), ("encoders", encoders))}


def with_doc_tables(text: str, tables: Mapping[str, str]) -> str:
    """``text`` (docs/models.md) with each :data:`DOC_TABLES` block replaced by ``tables``.

    Raises:
        ValueError: a marker is missing.
    """
    for key, (start, end) in DOC_TABLES.items():
        if start not in text or end not in text:
            raise ValueError(f"docs/models.md: the marker {start if start not in text else end!r} is missing")
        head, rest = text.split(start, 1)
        text = f"{head}{start}\n{tables[key]}\n{end}{rest.split(end, 1)[1]}"
    return text
