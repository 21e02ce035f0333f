"""Layers, one operator per file: EdgeConv blocks, graph-transformer layers, attention, masking,
submanifold sparse convolutions."""

from graphevent.nn.layers.cross_attention import CrossTaskFusion, MultiHeadAttention, TaskAttentionPool
from graphevent.nn.layers.edge_conv_block import EdgeConvBlock
from graphevent.nn.layers.global_attention import EventSelfAttention
from graphevent.nn.layers.graph_transformer_layer import GraphTransformerLayer
from graphevent.nn.layers.masking import sample_hidden_nodes
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.normalize import Standardize
from graphevent.nn.layers.position import FourierPosition
from graphevent.nn.layers.set_loss import chamfer_distance
from graphevent.nn.layers.sparse_conv_transpose import SparseConvTranspose2d
from graphevent.nn.layers.sparse_lattice import SparseLattice
from graphevent.nn.layers.sparse_res_block import SparseResBlock
from graphevent.nn.layers.sparse_strided_conv import SparseStridedConv2d
from graphevent.nn.layers.submanifold_conv import SubmanifoldConv2d
from graphevent.nn.layers.task_pools import TaskPools

__all__ = [
    "MLP",
    "CrossTaskFusion",
    "EdgeConvBlock",
    "EventSelfAttention",
    "FourierPosition",
    "GraphTransformerLayer",
    "MultiHeadAttention",
    "SparseConvTranspose2d",
    "SparseLattice",
    "SparseResBlock",
    "SparseStridedConv2d",
    "Standardize",
    "SubmanifoldConv2d",
    "TaskAttentionPool",
    "TaskPools",
    "chamfer_distance",
    "sample_hidden_nodes",
]
