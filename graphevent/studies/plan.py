"""A study as data, and the ``graphevent`` commands it takes.

A :class:`Plan` names configurations (:class:`Config`), label fractions, seeds, the labelled
pool and an optional unlabelled pool for pretraining (:class:`Pool`), and the sizes (graph
nodes, epochs, batch, least optimizer steps per epoch). :func:`jobs` turns it into commands,
laid out under a work directory::

    WORK/data_labelled, data_unlabelled    graphevent preprocess (of simulated or given files)
    WORK/pretrain/KEY                      graphevent train, one per pretraining run used
    WORK/probe/fF_sS.json                  graphevent probe of the frozen encoders (Plan.probes)
    WORK/finetune/fF_sS/CONFIG             graphevent train --label-fraction F --label-seed S
    WORK/eval/fF_sS                        graphevent eval of every configuration of (F, S)

Seed ``s`` draws its own labelled subset (``--label-seed s``) and, with ``vary_init``, its own
initialisation (``--set seed=s``); every configuration with seed ``s`` sees the same subset
and is scored on the same test events, so differences pair by seed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from graphevent.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STAGES = ("data", "pretrain", "probe", "finetune", "eval")
# multitask_finetune's layer-wise decay before it became 0.75 (session 14): the study
# configurations measured before then pin it, so their finished runs keep their meaning
NO_LAYER_DECAY = ("train.encoder_layer_decay=1.0",)
# multitask_finetune's symmetry augmentation before it became a default (session 15): pinned off
# in the multitask configurations measured before then, for the same reason
NO_FLIP = ("model.augment_flip=false",)
# multitask_finetune turns layer decay off from 1,000 labelled training events (session 24): the
# configurations with layer decay measured before then pin it on at every label count
DECAY_AT_ANY_LABELS = ("train.encoder_layer_decay_max_labels=0",)
# both pins: multitask_finetune as it was before session 14 (the runs of the encoders plan,
# issue 22's recipe and its ablations, the benchmark and the whole-event study)
OLD_DEFAULTS = NO_LAYER_DECAY + NO_FLIP
# (metrics.json key, table heading, decimals) of a binary classification
BINARY_METRICS = (("auc", "AUC", 3), ("rejection_at_0.5", "1/eps_B @ eps_S=0.5", 1))


@dataclass(frozen=True)
class Config:
    """One configuration of a study.

    Args:
        name: row name in tables and figures.
        experiment: shipped experiment name (``particlenet``) or a YAML file.
        sets: ``--set`` overrides.
        init: what ``--init-from`` gets: keys of :attr:`Plan.pretrain`, or paths of existing
            runs or checkpoints; empty: from scratch.
        family: configurations of one family and settings, with and without ``init``, are
            compared as pretrained minus scratch (default: the name's first word).
        versus: an ablation: the name of the configuration this one changes one ingredient
            of; the report gives this minus that, paired by seed.
    """

    name: str
    experiment: str
    sets: tuple[str, ...] = ()
    init: tuple[str, ...] = ()
    family: str = ""
    versus: str = ""

    @property
    def tag(self) -> str:
        """The run directory's name."""
        return self.name.replace(" ", "_").replace("+", "_")

    @property
    def group(self) -> str:
        return self.family or self.name.split()[0]


@dataclass(frozen=True)
class Pool:
    """Events of a study: an existing dataset, or image files (given and/or simulated) to preprocess.

    Args:
        dataset: a preprocessed dataset directory; the other fields are then unused.
        files: image files to preprocess.
        events: events to simulate with ``graphevent simulate KIND`` (0: none), in ``pieces``
            files of seeds ``seed + 1000 i``.
        kind: what to simulate: ``qg`` (jets) or ``events`` (whole collision events).
        split: train, val and test fractions of the preprocessed dataset.
    """

    dataset: Path | None = None
    files: tuple[Path, ...] = ()
    events: int = 0
    kind: str = "qg"
    seed: int = 1
    pieces: int = 1
    split: tuple[float, float, float] = (0.6, 0.1, 0.3)

    def simulated(self, cache: Path) -> list[tuple[Path, int, int]]:
        """``(file, events, seed)`` of each simulated piece, in ``cache``."""
        n, k = self.events, max(self.pieces, 1)
        sizes = [n // k + (i < n % k) for i in range(k)] if n else []
        return [(cache / f"{self.kind}_{m}_seed{self.seed + 1000 * i}.h5", m, self.seed + 1000 * i) for i, m in enumerate(sizes)]


@dataclass(frozen=True)
class Plan:
    """A study: configurations x label fractions x seeds, its pools and sizes.

    Args:
        configs: the configurations, in table order.
        reference: name of the configuration every other one is compared to, seed by seed.
        fractions: label fractions in (0, 1].
        seeds: the seeds of every fraction; ``small_seeds`` (if any) those at fractions <= ``small_fraction``.
        labelled: the pool fine-tuned on and evaluated on (its test split).
        unlabelled: the pool pretrained on (``None``: the labelled pool's train split).
        pretrain: pretraining runs by key: (experiment, ``--set`` overrides).
        probes: runs whose frozen embeddings ``graphevent probe`` fits linear and kNN probes
            to at every fraction and seed (the labelled subset fine-tuning draws): keys of
            ``pretrain``, or paths of existing runs or checkpoints. A plan of probes alone
            has no ``configs`` (and ``reference`` ``""``).
        probe_random_init: also probe each of them randomly initialised (the seed's).
        test: evaluate on this dataset's test split instead of the labelled pool's.
        data_config: the shipped data config (or a YAML file) that preprocesses the pools.
        metrics: what the report reads from each run's ``metrics.json`` (its ``label`` task):
            ``(key, table heading, decimals)``, the first the headline.
        max_nodes: graph node cap of the preprocessed pools.
        epochs, pre_epochs: fine-tuning and pretraining epochs.
        batch: batch size (0: the experiment's); ``pre_batch``: that of pretraining (0: ``batch``).
        min_steps: least optimizer steps per fine-tuning epoch (0: no minimum).
        train_sets: ``--set`` overrides of every training run.
        gpus: GPUs per training run.
        vary_init: seed ``s`` also sets the experiment seed (initialisation, shuffling).
        bootstrap, checkpoint: ``graphevent eval``'s ``--bootstrap`` and ``--checkpoint``.
    """

    configs: tuple[Config, ...]
    reference: str
    fractions: tuple[float, ...]
    labelled: Pool
    seeds: tuple[int, ...] = (0, 1, 2)
    small_seeds: tuple[int, ...] = ()
    small_fraction: float = 0.01
    unlabelled: Pool | None = None
    pretrain: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    probes: tuple[str, ...] = ()
    probe_random_init: bool = True
    test: Path | None = None
    data_config: str = "ml4sci_qg_hdf5"
    metrics: tuple[tuple[str, str, int], ...] = BINARY_METRICS
    max_nodes: int = 48
    epochs: int = 20
    pre_epochs: int = 10
    batch: int = 0
    pre_batch: int = 0
    min_steps: int = 0
    train_sets: tuple[str, ...] = ()
    gpus: int = 0
    workers: int = 2
    vary_init: bool = True
    bootstrap: int = 0
    checkpoint: str = "best"

    def __post_init__(self) -> None:
        names = [c.name for c in self.configs]
        if (self.configs or self.reference) and self.reference not in names:
            raise ConfigError(f"reference {self.reference!r}: not a configuration of the plan; expected one of: {', '.join(names)}")
        lost = [c for c in self.configs if c.versus and c.versus not in names]
        if lost:
            raise ConfigError(f"configuration {lost[0].name!r}: versus {lost[0].versus!r} is not a configuration of the plan; "
                              f"expected one of: {', '.join(names)}")
        bad = [f for f in self.fractions if not 0 < f <= 1]
        if bad:
            raise ConfigError(f"fractions {list(self.fractions)}: {bad[0]} is outside (0, 1]")
        for what, keys in (("init", [k for c in self.configs for k in c.init]), ("probe", self.probes)):
            unknown = sorted({k for k in keys if k not in self.pretrain and not Path(k).exists()})
            if unknown:
                raise ConfigError(f"{what} {unknown[0]!r}: neither a pretraining key ({', '.join(self.pretrain) or 'none'}) nor an existing path")
        if not self.configs and not self.probes:
            raise ConfigError("plan: no configurations and no probes; expected at least one of them")

    def seed_list(self, fraction: float) -> list[int]:
        """The seeds at ``fraction``."""
        return list(self.small_seeds if self.small_seeds and fraction <= self.small_fraction else self.seeds)


@dataclass
class Job:
    """One command of a study: done when ``out`` exists (and, unless ``cached``, its command is unchanged)."""

    key: str
    stage: str
    cmd: list[str]
    out: Path
    deps: list[str] = field(default_factory=list)
    cached: bool = False


def graphevent_cli() -> list[str]:
    """The ``graphevent`` command of this interpreter."""
    return [sys.executable, "-m", "graphevent.cli.app"]


def fraction_tag(frac: float) -> str:
    return f"f{frac:g}"


def run_dir(work: Path, config: Config, frac: float, seed: int) -> Path:
    return work / "finetune" / f"{fraction_tag(frac)}_s{seed}" / config.tag


def eval_dir(work: Path, frac: float, seed: int) -> Path:
    return work / "eval" / f"{fraction_tag(frac)}_s{seed}"


def probe_file(work: Path, frac: float, seed: int) -> Path:
    return work / "probe" / f"{fraction_tag(frac)}_s{seed}.json"


def dataset_dir(plan: Plan, work: Path, pool: str) -> Path:
    """The dataset of ``pool`` (``labelled`` or ``unlabelled``; no unlabelled pool: the labelled one)."""
    if pool == "unlabelled" and plan.unlabelled:
        return plan.unlabelled.dataset or work / "data_unlabelled"
    return plan.labelled.dataset or work / "data_labelled"


def experiment(name: str, kind: str = "experiments") -> str:
    """A shipped experiment's (or, with ``kind="data"``, data config's) file, for a readable,
    checkable command; a path is kept."""
    path = CONFIGS / kind / f"{name}.yaml"
    return str(path) if path.is_file() else name


def _sets(sets) -> list[str]:
    return [x for s in sets for x in ("--set", s)]


def jobs(plan: Plan, work: Path, cache: Path) -> list[Job]:
    """Every command of ``plan`` in run order (the longest fine-tuning runs first)."""
    ge, out = graphevent_cli(), []

    def train(batch: int) -> list[str]:
        """The options every training run shares (``batch`` 0: the experiment's)."""
        return ["--no-progress", "--gpus", str(plan.gpus), *(["--batch-size", str(batch)] if batch else []), *_sets(plan.train_sets)]

    for name, pool in (("labelled", plan.labelled), ("unlabelled", plan.unlabelled)):
        if pool is None or pool.dataset:
            continue
        sims = []
        for path, n, seed in pool.simulated(cache):
            sims.append(Job(f"simulate {path.name}", "data", ge + ["simulate", pool.kind, "--events", str(n), "--seed", str(seed), "--out", str(path),
                                                                    "--workers", str(plan.workers), *["--no-particles"] * (pool.kind == "qg")],
                            path, cached=True))
        tr, va, te = pool.split
        files = [str(p) for p in pool.files] + [str(j.out) for j in sims]
        ds = dataset_dir(plan, work, name)
        out += sims + [Job(f"preprocess {name}", "data", ge + [
            "preprocess", *files, "-c", experiment(plan.data_config, "data"), "-o", str(ds), "--workers", str(plan.workers),
            "--overwrite", "--no-summary", *_sets([f"graph.max_nodes={plan.max_nodes}", f"split.train={tr}", f"split.val={va}", f"split.test={te}"])],
            ds, deps=[j.key for j in sims])]
    data_jobs = {j.out: j.key for j in out if j.stage == "data" and not j.cached}
    unlabelled, labelled = dataset_dir(plan, work, "unlabelled"), dataset_dir(plan, work, "labelled")

    def runs(keys) -> list[str]:
        """The runs ``keys`` name: a pretraining key's run directory, or the path as given."""
        return [str(work / "pretrain" / k) if k in plan.pretrain else k for k in keys]

    def after(keys) -> list[str]:
        """The pretraining jobs among ``keys``."""
        return [f"pretrain {k}" for k in keys if k in plan.pretrain]

    for key in sorted(({k for c in plan.configs for k in c.init} | set(plan.probes)) & plan.pretrain.keys()):
        exp, sets = plan.pretrain[key]
        run = work / "pretrain" / key
        out.append(Job(f"pretrain {key}", "pretrain", ge + [
            "train", "-c", experiment(exp), "--data", str(unlabelled), "--out", str(run), "--overwrite", "--epochs", str(plan.pre_epochs),
            *train(plan.pre_batch or plan.batch), *_sets(sets)], run, deps=[data_jobs[unlabelled]] if unlabelled in data_jobs else []))
    labelled_dep = [data_jobs[labelled]] if labelled in data_jobs else []
    for frac in sorted(plan.fractions, reverse=True) if plan.probes else ():
        for seed in plan.seed_list(frac):
            file = probe_file(work, frac, seed)
            out.append(Job(f"probe {frac:g} seed {seed}", "probe", ge + [
                "probe", *runs(plan.probes), "--data", str(labelled), *(["--test-data", str(plan.test)] if plan.test else []),
                "--label-fraction", f"{frac:g}", "--seed", str(seed), "--pool-events", "0", *["--random-init"] * plan.probe_random_init,
                "--out", str(file), "--overwrite"], file, deps=after(plan.probes) + labelled_dep))
    for frac in sorted(plan.fractions, reverse=True):
        for seed in plan.seed_list(frac):
            for c in plan.configs:
                run = run_dir(work, c, frac, seed)
                cmd = ge + ["train", "-c", experiment(c.experiment), "--data", str(labelled), "--out", str(run), "--overwrite",
                            "--epochs", str(plan.epochs), "--label-fraction", f"{frac:g}", "--label-seed", str(seed), *train(plan.batch),
                            *_sets([f"seed={seed}"] * plan.vary_init + [f"train.min_steps_per_epoch={plan.min_steps}"] * bool(plan.min_steps)),
                            *_sets(c.sets), *[x for i in runs(c.init) for x in ("--init-from", i)]]
                deps = after(c.init) + labelled_dep
                out.append(Job(f"{c.name} @ {frac:g} seed {seed}", "finetune", cmd, run, deps=deps))
    for frac in sorted(plan.fractions, reverse=True) if plan.configs else ():
        for seed in plan.seed_list(frac):
            ev = eval_dir(work, frac, seed)
            out.append(Job(f"eval {frac:g} seed {seed}", "eval", ge + [
                "eval", *[str(run_dir(work, c, frac, seed)) for c in plan.configs], "--data", str(plan.test or labelled), "--split", "test",
                "--out", str(ev), "--bootstrap", str(plan.bootstrap), "--checkpoint", plan.checkpoint, "--no-progress", "--overwrite"],
                ev, deps=[f"{c.name} @ {frac:g} seed {seed}" for c in plan.configs]))
    return out
