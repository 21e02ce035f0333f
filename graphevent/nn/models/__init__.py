"""Registered models. Importing this package registers them (see :mod:`graphevent.nn.registry`).

=======================  ====================================================================  ====================
name                     what                                                                  stages
=======================  ====================================================================  ====================
``masked_gt_ae``         masked graph-transformer autoencoder (encoder ``masked_gt``)          pretrain
``edgeconv_ae``          sparse EdgeConv autoencoder (encoder ``edgeconv``)                    pretrain
``contrastive``          any registered encoder, NT-Xent on augmented views (JetCLR)           pretrain
``masked_gt_latent``     ``masked_gt``, masked latent prediction vs an EMA teacher             pretrain
``masked_gt_occupancy``  ``masked_gt``, hidden nodes' occupancy on a grid (positions unknown)  pretrain
``sparse_conv_ae``       submanifold sparse-convolution autoencoder (``sparse_conv``)          pretrain
``multitask``            encoder(s) + task attention heads fused by cross attention            finetune, supervised
``particlenet``          ParticleNet-style supervised baseline (arXiv:1902.08570)              supervised, finetune
``resnet15``             CMS E2E ResNet-15 on dense images (arXiv:1902.08276)                  supervised, finetune
=======================  ====================================================================  ====================

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
