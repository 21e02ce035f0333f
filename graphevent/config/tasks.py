"""Task configs: what each supervised head predicts and with which loss (no torch here;
:mod:`graphevent.nn.tasks` builds the heads, losses and output transforms from them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graphevent.errors import ConfigError

LABEL_TARGETS = ("label", "y")


@dataclass(frozen=True)
class TaskConfig:
    """One supervised task.

    Args:
        name: unique task name (letters, digits, ``_``); used in losses, metrics, outputs.
        type: ``classification`` (of the event label ``y``) or ``regression``.
        target: regression: a name from ``DatasetInfo.targets`` (e.g. ``m0``);
            classification: ``None``, ``label`` or ``y`` (the event label).
        weight: weight of this task's loss in the total (>= 0).
        loss: ``ce`` (classification; the default), ``mse`` (regression default),
            ``huber`` or ``l1``.
    """

    name: str
    type: Literal["classification", "regression"]
    target: str | None = None
    weight: float = 1.0
    loss: Literal["ce", "mse", "huber", "l1"] | None = None

    def validate(self, where: str = "task") -> None:
        if not self.name or not self.name.replace("_", "a").isalnum():
            raise ConfigError(f"{where}.name: invalid task name {self.name!r}; expected letters, digits and _")
        if self.weight < 0:
            raise ConfigError(f"{where}.weight: {self.weight} is negative; expected >= 0")
        if self.type == "classification":
            if self.target not in (None, *LABEL_TARGETS):
                raise ConfigError(
                    f"{where}.target: {self.target!r} for a classification task; expected none, 'label' or 'y'"
                )
            if self.loss not in (None, "ce"):
                raise ConfigError(f"{where}.loss: {self.loss!r} for a classification task; expected 'ce'")
        else:
            if self.target is None:
                raise ConfigError(f"{where}.target: missing for regression task {self.name!r}; expected a dataset target name")
            if self.loss == "ce":
                raise ConfigError(f"{where}.loss: 'ce' for a regression task; expected one of 'mse', 'huber', 'l1'")

    @property
    def resolved_loss(self) -> str:
        if self.loss is not None:
            return self.loss
        return "ce" if self.type == "classification" else "mse"
