"""Registered models. Importing this package registers them (see :mod:`graphevent.nn.registry`).

``graphevent models`` lists them (``list_models()``, ``list_encoders()``; the tables of
docs/models.md are generated from the registries by scripts/update_models_summary.py).

Every module of this package is imported here, so a model registers itself by being a file
in this folder: adding one touches no other file. Encoders live in :mod:`graphevent.nn.encoders`.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
