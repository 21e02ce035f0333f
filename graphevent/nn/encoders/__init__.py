"""Registered encoders: modules that turn a batch into node tokens and a pooled embedding
(:data:`graphevent.nn.registry.ENCODER_CONTRACT`), one file each with its own config.

The models of :mod:`graphevent.nn.models` compose them (autoencoders, contrastive and latent
pretraining, ``multitask``). Every module of this package is imported here, so an encoder
registers itself by being a file in this folder: adding one touches no other file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
