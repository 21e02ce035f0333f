"""graphevent: geometric deep learning on sparse detector images.

Detector images become point clouds and kNN graphs (:mod:`graphevent.data`), encoded by
self-supervised graph autoencoders (:mod:`graphevent.nn`), trained with DDP
(:mod:`graphevent.train`) and evaluated with trustworthy metrics (:mod:`graphevent.metrics`).
"""

__version__ = "0.1.0"
