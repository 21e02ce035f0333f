"""Models: layers, registered models, task heads (PyTorch Geometric).

``build_model(cfg, info, tasks)`` builds a registered model by name; ``list_models()``
lists them. Every model implements :class:`~graphevent.nn.models.base.GraphModel`.
"""

from graphevent.nn.registry import build_model, list_models, register_model
from graphevent.nn.tasks import TaskConfig

__all__ = ["TaskConfig", "build_model", "list_models", "register_model"]
