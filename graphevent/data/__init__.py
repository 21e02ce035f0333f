"""Point clouds, kNN graphs, dataset shards and the PyG dataset that streams them.

The graph contract every model, trainer and metric relies on: one event is a
``torch_geometric.data.Data`` with

============  =====================  ==================================================
field         shape / dtype          meaning
============  =====================  ==================================================
x             (N, F) float32         node features (channel values after scale/transform;
                                     names in ``DatasetInfo.node_features``)
pos           (N, 2) float32         (eta, phi) relative to the event centre, physical units
edge_index    (2, E) int64           kNN edges j -> i (row 0 source = neighbour, row 1 target)
edge_attr     (E, 3) float32         (delta eta, delta phi, delta R) = pos[j] - pos[i], |.|;
                                     wrapped along periodic axes (``DatasetInfo.periods``)
y             (1,) int64             class index into ``DatasetInfo.classes``
targets       (1, T) float32         regression targets, physical units, ``DatasetInfo.targets``
event_id      (1,) int64             dataset-wide event number (manifest order)
============  =====================  ==================================================

A batch is a PyG ``Batch`` (``batch`` vector, ``ptr``). ``DatasetInfo`` (from the dataset's
``manifest.json``) gives models their input sizes; nothing is hard-coded.
"""

from graphevent.data.info import DatasetInfo

__all__ = ["DatasetInfo"]
