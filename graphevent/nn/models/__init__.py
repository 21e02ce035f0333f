"""Registered models. Importing this package registers them (see :mod:`graphevent.nn.registry`).

=================  ============================================================  ==========
name               what                                                          stages
=================  ============================================================  ==========
``masked_gt_ae``   masked graph-transformer autoencoder                          pretrain
``edgeconv_ae``    sparse EdgeConv autoencoder (set decoder, Chamfer loss)       pretrain
``contrastive``    either encoder, NT-Xent on augmented jet views (JetCLR)       pretrain
``multitask``      encoder(s) + task attention heads fused by cross attention    finetune, supervised
``particlenet``    ParticleNet-style supervised baseline (arXiv:1902.08570)      supervised, finetune
=================  ============================================================  ==========
"""

from graphevent.nn.models.base import GraphModel
from graphevent.nn.models.contrastive import ContrastiveConfig, ContrastivePretrainer
from graphevent.nn.models.edgeconv_ae import EdgeConvAEConfig, EdgeConvAutoencoder
from graphevent.nn.models.masked_gt_ae import MaskedGTAutoencoder, MaskedGTConfig
from graphevent.nn.models.multitask import MultiTaskConfig, MultiTaskModel
from graphevent.nn.models.particlenet import ParticleNet, ParticleNetConfig

__all__ = [
    "ContrastiveConfig",
    "ContrastivePretrainer",
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
