"""Chunk transforms of the preprocessing pipeline, one per file, each with a readable repr.

``ImageToPoints`` (images -> nodes) -> ``ScaleTransform`` (per-channel scale, log1p) ->
``KNNGraph`` (neighbour lists). They work on numpy arrays for whole chunks of events.
"""

from graphevent.data.transforms.feature_transform import ScaleTransform
from graphevent.data.transforms.image_to_points import ImageToPoints, PointCloudChunk, points_from_hits
from graphevent.data.transforms.knn_graph import KNNGraph

__all__ = ["ImageToPoints", "KNNGraph", "PointCloudChunk", "ScaleTransform", "points_from_hits"]
