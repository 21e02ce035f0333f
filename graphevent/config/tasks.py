"""Task types and task configs: what each supervised head predicts and with which loss.

No torch here (loading a YAML config must stay light). The task-type registry
:data:`TASK_TYPES` is the one list of task types; each :class:`TaskType` declares its
losses, the metrics training validation reports, the kinds it records in ``metrics.json``
and the table labels of its metrics. The torch halves register under the same name:
the loss functions in :mod:`graphevent.nn.tasks` and the metric objects (one class, used by
training validation and by ``graphevent eval``) in :mod:`graphevent.metrics` via
:func:`graphevent.metrics.base.register_task_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from graphevent.config.registry import Registry
from graphevent.errors import ConfigError

LABEL_TARGETS = ("label", "y")

#: units of regression targets known by name: ``graphevent simulate`` and the public samples
#: (ML4SCI quark-gluon ``m0``/``pt``) give masses, momenta and energies in GeV. A target not
#: named here has no unit shown (none is guessed).
TARGET_UNITS = {"m0": "GeV", "m": "GeV", "mass": "GeV", "pt": "GeV", "e": "GeV", "energy": "GeV", "et": "GeV"}


def target_unit(target: str) -> str | None:
    """``pt`` -> ``"GeV"``; a target of unknown unit -> ``None``."""
    return TARGET_UNITS.get(target.lower())


@dataclass(frozen=True)
class TaskType:
    """What one kind of supervised task owns.

    Args:
        name: the ``type:`` value in a task config (``classification``).
        losses: loss names it accepts; the first is the default.
        val_metrics: metric names training validation reports (``val_<task>_<metric>``);
            all are maximised if named in ``maximise``, minimised otherwise.
        maximise: the ``val_metrics`` that are better when larger (AUC, accuracy).
        kinds: the ``kind`` values its metrics record in ``metrics.json``.
        labels: table labels of its metric names (``{"auc": "AUC"}``).
        target_unit_metrics: the metrics measured in the unit of the task's target
            (regression ``mae``: GeV for a target in GeV); the others are unitless.
        label_target: the task predicts the event label (``target`` is none/label/y) rather
            than a dataset target.
    """

    name: str
    losses: tuple[str, ...]
    val_metrics: tuple[str, ...]
    maximise: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    target_unit_metrics: tuple[str, ...] = ()
    label_target: bool = False

    @property
    def default_loss(self) -> str:
        return self.losses[0]


TASK_TYPES: Registry[TaskType] = Registry("task type")


#: add a TaskType (a name registered twice is an error)
register_task_type = TASK_TYPES.add


def get_task_type(name: str, where: str = "task.type") -> TaskType:
    """The registered entry ``name``; an unknown name is a ConfigError listing the known ones."""
    return TASK_TYPES.lookup(name, where)


register_task_type(TaskType(
    "classification", losses=("ce",), val_metrics=("auc", "accuracy"), maximise=("auc", "accuracy"),
    kinds=("binary", "multiclass"), labels=(("auc", "AUC"), ("auc_macro", "macro AUC"), ("accuracy", "accuracy")),
    label_target=True,
))
register_task_type(TaskType(
    "regression", losses=("mse", "huber", "l1"), val_metrics=("mae",), kinds=("regression",),
    labels=(("mae", "MAE"), ("rmse", "RMSE"), ("bias", "bias"), ("resolution", "resolution"),
            ("resolution_constant", "resol. of const.")),
    target_unit_metrics=("mae", "rmse", "bias"),
))


@dataclass(frozen=True)
class TaskConfig:
    """One supervised task.

    Args:
        name: unique task name (letters, digits, ``_``); used in losses, metrics, outputs.
        type: a registered task type (:data:`TASK_TYPES`): ``classification`` (of the
            event label ``y``) or ``regression``.
        target: regression: a name from ``DatasetInfo.targets`` (e.g. ``m0``);
            classification: ``None``, ``label`` or ``y`` (the event label).
        weight: weight of this task's loss in the total (>= 0).
        loss: ``ce`` (classification; the default), ``mse`` (regression default),
            ``huber`` or ``l1``.
    """

    name: str
    type: str
    target: str | None = None
    weight: float = 1.0
    loss: str | None = None

    @property
    def task_type(self) -> TaskType:
        return get_task_type(self.type)

    def validate(self, where: str = "task") -> None:
        kind = get_task_type(self.type, f"{where}.type")
        if not self.name or not self.name.replace("_", "a").isalnum():
            raise ConfigError(f"{where}.name: invalid task name {self.name!r}; expected letters, digits and _")
        if self.weight < 0:
            raise ConfigError(f"{where}.weight: {self.weight} is negative; expected >= 0")
        if kind.label_target:
            if self.target not in (None, *LABEL_TARGETS):
                raise ConfigError(
                    f"{where}.target: {self.target!r} for a {kind.name} task; expected none, 'label' or 'y'"
                )
        elif self.target is None:
            raise ConfigError(f"{where}.target: missing for {kind.name} task {self.name!r}; expected a dataset target name")
        if self.loss is not None and self.loss not in kind.losses:
            expected = repr(kind.losses[0]) if len(kind.losses) == 1 else "one of " + ", ".join(map(repr, kind.losses))
            raise ConfigError(f"{where}.loss: {self.loss!r} for a {kind.name} task; expected {expected}")

    @property
    def resolved_loss(self) -> str:
        return self.loss if self.loss is not None else get_task_type(self.type).default_loss


def validation_units(tasks) -> dict[str, str]:
    """Units of the validation metrics of ``tasks`` (``TaskConfig``s) by ``metrics.jsonl`` key:
    ``{"val_mass_mae": "GeV"}`` for a regression task ``mass`` of a target in GeV; metrics
    without a unit, or of a target of unknown unit, are absent."""
    units: dict[str, str] = {}
    for task in tasks:
        kind = get_task_type(task.type)
        unit = None if kind.label_target or not task.target else target_unit(task.target)
        if unit:
            units.update({f"val_{task.name}_{metric}": unit for metric in kind.target_unit_metrics})
    return units
