"""Probes of frozen embeddings: what an encoder learned, without fine-tuning it.

For a run (a pretraining run, a fine-tuned run, or the same model randomly initialised)
the model's pooled per-event embedding ``model.encode(batch)[1]`` is computed in eval mode
without gradients, on a pool of training events and on the evaluated split. Then:

* **linear probe**: L2-regularised logistic regression (full-batch L-BFGS in float64,
  deterministic) fitted on a labelled subset of the pool (``label_fraction``, ``seed``,
  the same subset rule as ``train.label_fraction``), scored by AUC on the split;
* **kNN probe**: each evaluated event's score is the similarity-weighted share of signal
  among its ``k`` nearest labelled events by cosine similarity; AUC on the split;
* **observables**: ridge regression from the embedding to the jet observables of
  :mod:`graphevent.data.observables` (multiplicity, girth, pT_D, mass), fitted on the whole
  pool (no labels needed) and scored by R^2 on the split.

Embeddings are standardised with the pool's mean and standard deviation before every fit,
so probes see the same scale whatever the encoder's. R^2 is ``nan`` for an observable that
is constant on the split (e.g. multiplicity when every graph is capped at ``max_nodes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphevent.data.observables import OBSERVABLES, channel_specs, jet_observables, node_weights
from graphevent.errors import ConfigError, DataError
from graphevent.evaluate.options import DEFAULT_BATCH_SIZE

PROBE_COLUMNS = ("linear_auc", "knn_auc", *(f"r2_{o}" for o in OBSERVABLES))
#: the terminal table's headers (80 columns): AUCs, then R² per observable
TABLE_HEADERS = {"linear_auc": "linear\nAUC", "knn_auc": "kNN\nAUC", "r2_multiplicity": "R²\nmult",
                 "r2_girth": "R²\ngirth", "r2_ptd": "R²\npT_D", "r2_mass": "R²\nmass"}


@dataclass(frozen=True)
class ProbeOptions:
    """What ``graphevent probe`` computes.

    Args:
        split: evaluated split (probes are fitted on ``train``).
        label_fraction: fraction of the training pool whose labels fit the linear and kNN probes.
        seed: seed of that labelled subset and of the random initialisation (``random_init``).
        pool_events: training events embedded (the first ones of the split; 0 = all).
        max_events: evaluated events (the first ones of the split; 0 = all).
        k: neighbours of the kNN probe.
        l2: L2 penalty of the logistic regression (on the mean loss, standardised inputs).
        ridge: ridge penalty of the observable fits (times the number of events).
        random_init: also probe each run's model randomly initialised (same config, ``seed``).
        checkpoint: ``best`` or ``last``.
        batch_size: events per inference batch.
        signal: signal class index (AUC of the signal class against the rest).
    """

    split: str = "test"
    label_fraction: float = 1.0
    seed: int = 0
    pool_events: int = 5000
    max_events: int = 0
    k: int = 20
    l2: float = 1e-3
    ridge: float = 1e-2
    random_init: bool = False
    checkpoint: str = "best"
    batch_size: int = DEFAULT_BATCH_SIZE
    signal: int = 1

    def validate(self) -> None:
        if not 0 < self.label_fraction <= 1:
            raise ConfigError(f"--label-fraction {self.label_fraction}: expected 0 < fraction <= 1")
        for key in ("k", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"--{key.replace('_', '-')} {getattr(self, key)}: expected an integer >= 1")
        for key in ("pool_events", "max_events"):
            if getattr(self, key) < 0:
                raise ConfigError(f"--{key.replace('_', '-')} {getattr(self, key)}: expected >= 0 (0 = all)")
        if self.l2 < 0 or self.ridge < 0:
            raise ConfigError(f"--l2 {self.l2} / --ridge {self.ridge}: expected >= 0")


@dataclass
class Embeddings:
    """Pooled embeddings ``z (n, D)``, labels ``y (n,)``, event ids and observables ``{name: (n,)}``."""

    z: np.ndarray
    y: np.ndarray
    event_id: np.ndarray
    observables: dict[str, np.ndarray]


@dataclass
class ProbeResult:
    """Rows of :func:`probe_runs`: one per (run, init), with :data:`PROBE_COLUMNS` and counts."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    options: ProbeOptions = field(default_factory=ProbeOptions)
    out: Path | None = None  # the JSON file written, if any

    def table(self):
        """A rich table of the rows that fits 80 columns: run names wrap instead of being cut,
        short headers (``TABLE_HEADERS``), the embedding size and the labelled events in the
        caption (the JSON and Markdown forms keep them per row)."""
        from rich.markup import escape
        from rich.table import Table

        o = self.options
        dims = ", ".join(dict.fromkeys(str(r["dim"]) for r in self.rows))
        labelled = ", ".join(dict.fromkeys(f"{r['labelled']:,}" for r in self.rows))
        t = Table(title=f"probes: fitted on train ({o.label_fraction:g} of labels, seed {o.seed}), scored on {o.split}",
                  title_justify="left", caption_justify="left",
                  caption=f"{labelled} labelled events; embedding dim {dims}; R²: ridge fit of the jet "
                          "observable (multiplicity, girth, pT_D, mass) from the embedding")
        t.add_column("run", overflow="fold", ratio=1)
        t.add_column("init", no_wrap=True)
        for c in PROBE_COLUMNS:
            t.add_column(TABLE_HEADERS[c], justify="right", no_wrap=True)
        for r in self.rows:
            t.add_row(escape(r["run"]), r["init"], *(_fmt(r[c]) for c in PROBE_COLUMNS))
        return t

    def to_json(self) -> dict[str, Any]:
        """Options and rows as plain JSON values (``nan`` -> ``None``)."""
        clean = lambda v: None if isinstance(v, float) and not np.isfinite(v) else v  # noqa: E731
        return {"options": dict(self.options.__dict__), "rows": [{k: clean(v) for k, v in r.items()} for r in self.rows]}

    def markdown(self) -> str:
        head = ["run", "init", "dim", "labelled", *PROBE_COLUMNS]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            lines.append("| " + " | ".join([r["run"], r["init"], str(r["dim"]), str(r["labelled"]),
                                              *(_fmt(r[c]) for c in PROBE_COLUMNS)]) + " |")
        return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3f}"


# ---------------------------------------------------------------------- probes on arrays
def standardize(train: Tensor, *others: Tensor) -> list[Tensor]:
    """``(a - mean) / std`` with the mean and std of ``train`` (std 0 -> 1), for every array."""
    mean = train.mean(0)
    std = train.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [(a - mean) / std for a in (train, *others)]


def logistic_probe(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, num_classes: int,
                   l2: float = 1e-3, max_iter: int = 200) -> np.ndarray:
    """Class probabilities of L2-regularised (multinomial) logistic regression.

    Fitted by full-batch L-BFGS (strong Wolfe line search) in float64 on standardised inputs,
    minimising ``mean CE + l2 * |W|^2`` (bias not penalised); deterministic for given inputs.

    Shapes:
        z_train: (n, D), y_train: (n,), z_test: (m, D) -> (m, num_classes)
    """
    a, b = standardize(torch.as_tensor(z_train, dtype=torch.float64), torch.as_tensor(z_test, dtype=torch.float64))
    y = torch.as_tensor(y_train, dtype=torch.long)
    w = torch.zeros(a.size(1), num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(a @ w + bias, y) + l2 * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return torch.softmax(b @ w + bias, dim=1).numpy()


def knn_probe(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, num_classes: int, k: int = 20,
              temperature: float = 0.07) -> np.ndarray:
    """Weighted vote of the ``k`` nearest training events by cosine similarity ``s`` (of
    standardised embeddings), each weighing ``exp(s / temperature)`` (as in DINO,
    arXiv:2104.14294), so scores still rank events when ``k`` covers every labelled event.

    Shapes:
        z_train: (n, D), y_train: (n,), z_test: (m, D) -> (m, num_classes)
    """
    a, b = standardize(torch.as_tensor(z_train, dtype=torch.float64), torch.as_tensor(z_test, dtype=torch.float64))
    a = torch.nn.functional.normalize(a, dim=1)
    b = torch.nn.functional.normalize(b, dim=1)
    k = min(k, a.size(0))
    sim, idx = (b @ a.T).topk(k, dim=1)  # (m, k); ties resolved by topk's order
    w = torch.softmax(sim / temperature, dim=1)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(y_train, dtype=torch.long), num_classes).double()
    return (w[..., None] * onehot[idx]).sum(1).numpy()


def ridge_r2(z_train: np.ndarray, t_train: np.ndarray, z_test: np.ndarray, t_test: np.ndarray, ridge: float = 1e-2) -> float:
    """R^2 on the test rows of a ridge linear fit ``t ~ z`` (standardised ``z``, penalty
    ``ridge * n`` on the weights, intercept free); ``nan`` when ``t_test`` is constant.

    Shapes:
        z_train: (n, D), t_train: (n,), z_test: (m, D), t_test: (m,) -> float
    """
    a, b = standardize(torch.as_tensor(z_train, dtype=torch.float64), torch.as_tensor(z_test, dtype=torch.float64))
    t = torch.as_tensor(t_train, dtype=torch.float64)
    tt = torch.as_tensor(t_test, dtype=torch.float64)
    mu = t.mean()
    gram = a.T @ a + ridge * a.size(0) * torch.eye(a.size(1), dtype=torch.float64)
    w = torch.linalg.solve(gram, a.T @ (t - mu))
    pred = b @ w + mu
    ss_tot = (tt - tt.mean()).square().sum()
    if not ss_tot > 1e-12 * max(1.0, float(tt.abs().max()) ** 2):
        return float("nan")
    return float(1.0 - (tt - pred).square().sum() / ss_tot)


def class_auc(prob: np.ndarray, y: np.ndarray, signal: int) -> float:
    """AUC of the signal class's probability, signal against the rest."""
    from graphevent.metrics.roc import binary_auc

    return binary_auc(prob[:, signal], np.asarray(y) == signal)


# ---------------------------------------------------------------------- embeddings of a model
def pooled_embeddings(model: Any, dataset: Sequence[Any], indices: Sequence[int], channels: Sequence[dict[str, Any]],
                      batch_size: int = DEFAULT_BATCH_SIZE) -> Embeddings:
    """``model.encode(batch)[1]`` of the events ``indices`` of ``dataset`` and their observables
    (through :func:`~graphevent.evaluate.inference.infer`: eval mode, no gradients, the
    model's training mode restored)."""
    from torch.utils.data import Subset

    from graphevent.evaluate.inference import infer
    from graphevent.nn.batch import batch_vector

    zs, ys, ids, obs = [], [], [], {o: [] for o in OBSERVABLES}
    events = Subset(dataset, [int(i) for i in indices])
    for batch, pooled in infer(model, events, lambda m, b: m.encode(b)[1], batch_size):
        zs.append(pooled.double().cpu())
        ys.append(batch.y.view(-1).cpu())
        ids.append(batch.event_id.view(-1).cpu())
        b, n = batch_vector(batch)
        for name, v in jet_observables(batch.pos, node_weights(batch.x, channels), b, n).items():
            obs[name].append(v.cpu())
    cat = lambda xs: torch.cat(xs).numpy() if xs else np.zeros(0)  # noqa: E731
    z = torch.cat(zs).numpy() if zs else np.zeros((0, 0))
    return Embeddings(z, cat(ys), cat(ids), {k: cat(v) for k, v in obs.items()})


def probe_embeddings(train: Embeddings, test: Embeddings, labelled: np.ndarray, num_classes: int,
                     options: ProbeOptions) -> dict[str, float]:
    """:data:`PROBE_COLUMNS` of one encoder: classifiers fitted on ``train`` rows ``labelled``,
    observable fits on all ``train`` rows, everything scored on ``test``."""
    zl, yl = train.z[labelled], train.y[labelled]
    out: dict[str, float] = {}
    if len(np.unique(yl)) < 2:
        out["linear_auc"] = out["knn_auc"] = float("nan")
    else:
        out["linear_auc"] = class_auc(logistic_probe(zl, yl, test.z, num_classes, options.l2), test.y, options.signal)
        out["knn_auc"] = class_auc(knn_probe(zl, yl, test.z, num_classes, options.k), test.y, options.signal)
    for o in OBSERVABLES:
        out[f"r2_{o}"] = ridge_r2(train.z, train.observables[o], test.z, test.observables[o], options.ridge)
    return out


def probe_runs(run_dirs: Sequence[str | Path], data: str | Path, options: ProbeOptions | None = None,
               out: str | Path | None = None, overwrite: bool = False, test_data: str | Path | None = None) -> ProbeResult:
    """Probe the pooled embeddings of each run (and, with ``random_init``, of its model
    randomly initialised) on ``data``; the one library call behind ``graphevent probe``.

    Args:
        test_data: score on this dataset's ``options.split`` (default ``data``'s); the probes
            are fitted on ``data``'s train split either way.
        out: also write the rows as JSON there (:class:`~graphevent.utils.outfile.OutputFile`:
            checked before anything is computed, written atomically, signed ``probe``).
        overwrite: replace an earlier ``out`` written by ``graphevent probe``.

    Raises:
        ConfigError, DataError, RunError: bad options, dataset or run (one line each).
        OutputError: ``out`` is not a file graphevent may write.
    """
    from contextlib import ExitStack

    from graphevent.utils.outdir import ReadLock
    from graphevent.utils.outfile import OutputFile, write_json

    read = [*((Path(r), "run") for r in run_dirs), (Path(data), "--data"), *([(Path(test_data), "--test-data")] if test_data is not None else [])]
    inputs = [path for path, _ in read]
    if out is not None:
        OutputFile(out, "probe", inputs=inputs, overwrite=overwrite).check()  # before minutes of probing
    with ExitStack() as stack:
        for path, what in read:
            stack.enter_context(ReadLock(path, what))
        result = _probe_runs(run_dirs, data, options, test_data)
    if out is not None:
        result.out = write_json(out, result.to_json(), "probe", inputs=inputs, overwrite=overwrite)
    return result


def _probe_runs(run_dirs: Sequence[str | Path], data: str | Path, options: ProbeOptions | None,
                test_data: str | Path | None = None) -> ProbeResult:
    """:func:`probe_runs` with its inputs locked for reading."""
    from graphevent.data.dataset import GraphDataset
    from graphevent.data.info import load_manifest
    from graphevent.evaluate.runner import run_names
    from graphevent.nn.registry import build_model
    from graphevent.nn.checkpoint import load_run
    from graphevent.config.experiment import TrainConfig
    from graphevent.data.label_subset import label_subset

    options = options or ProbeOptions()
    options.validate()
    channels = channel_specs(load_manifest(data))
    train_set = GraphDataset(data, "train")
    test_set = GraphDataset(test_data or data, options.split)
    if len(train_set) == 0 or len(test_set) == 0:
        where = f"--data {data}" + (f" / --test-data {test_data}" if test_data is not None else "")
        raise DataError(f"{where}: probes need events in train and {options.split} (found {len(train_set)}, {len(test_set)})")
    if list(test_set.info.node_features) != list(train_set.info.node_features):
        raise DataError(f"--test-data {test_data}: node features {test_set.info.node_features}; expected --data's {train_set.info.node_features}")
    pool = np.arange(len(train_set) if options.pool_events == 0 else min(options.pool_events, len(train_set)))
    tested = np.arange(len(test_set) if options.max_events == 0 else min(options.max_events, len(test_set)))
    # the rule fine-tuning uses (train.label_fraction with its per-class minimum), so a probe
    # and a fine-tuned run at the same fraction and seed see the same labelled jets
    labelled = label_subset(train_set.event_ids[pool], options.label_fraction, options.seed,
                            labels=train_set.labels()[pool], min_per_class=TrainConfig().min_labels_per_class)
    num_classes = train_set.info.num_classes
    if not 0 <= options.signal < num_classes:
        raise ConfigError(f"--signal {options.signal}: expected a class index in 0..{num_classes - 1}")

    result = ProbeResult(options=options)
    for name, run in zip(run_names(run_dirs), run_dirs):
        model, cfg, info = load_run(run, options.checkpoint)
        if list(info.node_features) != list(train_set.info.node_features):
            raise DataError(f"{run}: trained on node features {info.node_features}, --data {data} has {train_set.info.node_features}")
        models = [("trained", model)]
        if options.random_init:
            torch.manual_seed(options.seed)
            models.append(("random", build_model(dict(model.model_config), info, getattr(model, "tasks", None))))
        for init, m in models:
            tr = pooled_embeddings(m, train_set, pool, channels, options.batch_size)
            te = pooled_embeddings(m, test_set, tested, channels, options.batch_size)
            row = {"run": name, "init": init, "dim": int(tr.z.shape[1]), "labelled": int(len(labelled)), "tested": int(len(tested))}
            row.update(probe_embeddings(tr, te, labelled, num_classes, options))
            result.rows.append(row)
    return result
