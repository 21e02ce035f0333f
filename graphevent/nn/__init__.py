"""Models: layers, registered models, task heads (PyTorch Geometric).

``build_model(cfg, info, tasks)`` builds a registered model by name; ``list_models()``
lists them. Every model implements :class:`~graphevent.nn.models.base.GraphModel`.
``build_encoder(name, info, config)`` builds a registered encoder (an ``nn.Module``: a batch in,
node tokens and a pooled embedding out); ``list_encoders()`` lists them.
"""

from graphevent.nn.registry import build_encoder, build_model, list_encoders, list_models, register_encoder, register_model
from graphevent.nn.tasks import TaskConfig

__all__ = ["TaskConfig", "build_encoder", "build_model", "list_encoders", "list_models", "register_encoder", "register_model"]
