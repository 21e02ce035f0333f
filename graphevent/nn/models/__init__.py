"""Registered models and encoders. Importing this package registers them (see :mod:`graphevent.nn.registry`).

``graphevent models`` lists them (``list_models()``, ``list_encoders()``; the tables of
docs/models.md are generated from the registries by scripts/update_models_summary.py).

Every module of this package is imported here, so a model (or encoder) registers itself
by being a file in this folder: adding one touches no other file.
"""

import importlib
import pkgutil

from graphevent.nn.models.base import GraphModel
from graphevent.nn.models.edgeconv_ae import EdgeConvAEConfig, EdgeConvAutoencoder
from graphevent.nn.models.masked_gt_ae import MaskedGTAutoencoder, MaskedGTConfig
from graphevent.nn.models.multitask import MultiTaskConfig, MultiTaskModel
from graphevent.nn.models.particlenet import ParticleNet, ParticleNetConfig

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "EdgeConvAEConfig",
    "EdgeConvAutoencoder",
    "GraphModel",
    "MaskedGTAutoencoder",
    "MaskedGTConfig",
    "MultiTaskConfig",
    "MultiTaskModel",
    "ParticleNet",
    "ParticleNetConfig",
]
