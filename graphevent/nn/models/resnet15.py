"""ResNet-15 image baseline of the CMS end-to-end papers, on images rebuilt from the stored points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import padded_nodes
from graphevent.nn.layers.pixels import dense_images, pixel_coords
from graphevent.nn.models.base import SupervisedModel
from graphevent.nn.registry import register_model
from graphevent.nn.tasks import TaskConfig, TaskSet, check_tasks, default_tasks


@dataclass(frozen=True)
class ResNet15Config:
    """Keyword arguments of ``resnet15`` (defaults: the CMS E2E ResNet-15).

    Args:
        fmaps: channels of the first and of the second stage (default 16, 32).
        nblocks: residual blocks per stage; the network has ``2 * nblocks + 1`` blocks (the
            middle one halves the resolution), so 3 gives the paper's 7 blocks: 14
            convolutions plus the first one = 15 layers.
        pixel_size: (eta, phi) pixel size of the rebuilt image; unset: the dataset's.
        image_size: (H, W) of the rebuilt image; unset: the dataset's image shape.
    """

    fmaps: tuple[int, int] = (16, 32)
    nblocks: int = 3
    pixel_size: tuple[float, float] | None = None
    image_size: tuple[int, int] | None = None

    def validate(self, where: str = "model") -> None:
        if min(self.fmaps) < 1 or self.nblocks < 1:
            raise ConfigError(f"{where}: fmaps and nblocks must be >= 1 (found {list(self.fmaps)}, {self.nblocks})")
        if self.pixel_size is not None and min(self.pixel_size) <= 0:
            raise ConfigError(f"{where}.pixel_size: {list(self.pixel_size)}; expected two sizes > 0")
        if self.image_size is not None and min(self.image_size) < 8:
            raise ConfigError(f"{where}.image_size: {list(self.image_size)}; expected at least 8 x 8 pixels")


class CircularPadCols(nn.Module):
    """Pad the last axis (phi columns) circularly: ``left`` columns from the right edge, ``right``
    from the left one. With the convolutions' own zero padding along eta only, a convolution
    then continues across the phi seam, and a stride-``s`` layer commutes with rolls by ``s``
    columns (left + right = kernel - stride).

    Shapes:
        x: (B, C, H, W) -> (B, C, H, W + left + right)
    """

    def __init__(self, left: int, right: int) -> None:
        super().__init__()
        self.left, self.right = left, right

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, [self.left, self.right, 0, 0], mode="circular")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.left}, {self.right})"


class ResBlock(nn.Module):
    r"""Basic residual block without normalisation: ``relu(conv2(relu(conv1(x))) + sc(x))``.

    ``conv1`` has stride 2 when the block doubles the channels (``sc`` is then a strided
    1 x 1 convolution), as in the CMS E2E ResNet-15.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out`` (``C_in`` or ``2 C_in``).
        wrap_cols: the columns are a periodic phi: circular padding along them
            (:class:`CircularPadCols`), zero padding along the rows only.

    Shapes:
        x: (B, C_in, H, W) -> (B, C_out, H / s, W / s)
    """

    def __init__(self, in_channels: int, out_channels: int, wrap_cols: bool = False) -> None:
        super().__init__()
        stride = 1 if in_channels == out_channels else 2
        self.in_channels, self.out_channels = in_channels, out_channels
        pad = (1, 0) if wrap_cols else 1
        self.pad1 = CircularPadCols(1, 2 - stride) if wrap_cols else nn.Identity()
        self.pad2 = CircularPadCols(1, 1) if wrap_cols else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=pad)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=pad)
        self.shortcut = nn.Identity() if stride == 1 else nn.Conv2d(in_channels, out_channels, 1, stride=stride)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.pad2(F.relu(self.conv1(self.pad1(x))))) + self.shortcut(x))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"


@register_model("resnet15")
class ResNet15(SupervisedModel):
    r"""ResNet-15 on dense (eta, phi) images: the CMS end-to-end image baseline.

    Andrews et al., "End-to-end jet classification of quarks and gluons with the CMS Open
    Data", arXiv:1902.08276: a 7 x 7 stride-2 convolution (``fmaps[0]`` channels), 2 x 2
    max pooling, ``nblocks`` residual blocks, one block doubling the channels at half the
    resolution, ``nblocks`` more, global max pooling and a linear layer per task (one
    classification task is the paper's network; no normalisation layers).

    Shards store points, not images: the model's input step rebuilds each event's image on
    the model's device (:func:`~graphevent.nn.layers.pixels.dense_images`: each node's
    values scattered into its pixel of a zero ``(B, F, H, W)`` tensor, ``F`` = the node
    features, divided by their standard deviation so empty pixels stay zero). For
    ``union`` nodes without ``collapse`` and without a ``max_nodes`` cap this is exactly the
    zero-suppressed image; see ``docs/models.md`` for what is lost otherwise.

    Args:
        info: dataset description (features, statistics, image geometry).
        config: :class:`ResNet15Config`.
        tasks: task list (default: classification of the label).

    Shapes:
        batch: x (N, F), pos (N, 2) -> image (B, F, H, W); forward_features: (N, C), (B, C)
        with C = ``fmaps[1]`` (a node's token: the last feature map at its pixel's cell);
        forward_heads: ``{task: (B, num_classes) logits | (B,) standardised value}``
    """

    config_class = ResNet15Config
    supports_pretrain = False
    supports_tasks = True

    def __init__(self, info: DatasetInfo, config: ResNet15Config | None = None, tasks: Sequence[TaskConfig] | None = None) -> None:
        super().__init__(info, config or ResNet15Config())
        c = self.config
        self.taskset = TaskSet(check_tasks(tasks if tasks is not None else default_tasks(info, regression=False), info), info)
        pixel_size = c.pixel_size if c.pixel_size is not None else info.pixel_size
        image_size = c.image_size if c.image_size is not None else (info.image_shape[1:] if info.image_shape else None)
        # plain floats and ints: forward_padded compiles with TorchScript
        self.pixel_size = (float(pixel_size[0]), float(pixel_size[1])) if pixel_size is not None else None
        self.image_size = (int(image_size[0]), int(image_size[1])) if image_size is not None else None
        std = [float(info.feature_stats.get(n, {}).get("std", 1.0)) or 1.0 for n in info.node_features]
        self.register_buffer("inv_std", 1.0 / torch.tensor(std), persistent=False)
        f0, f1 = c.fmaps
        # a periodic phi (the dataset's periods) spanning the image's width: circular padding along phi
        self.wrap_cols = bool(info.periods and info.periods[1] and self.image_size and self.pixel_size
                              and abs(self.image_size[1] * self.pixel_size[1] - info.periods[1]) <= 1e-4 * info.periods[1])
        self.pad0 = CircularPadCols(3, 2) if self.wrap_cols else nn.Identity()
        self.conv0 = nn.Conv2d(info.num_node_features, f0, 7, stride=2, padding=(1, 0) if self.wrap_cols else 1)
        w = self.wrap_cols
        blocks = [ResBlock(f0, f0, w) for _ in range(c.nblocks)] + [ResBlock(f0, f1, w)] + [ResBlock(f1, f1, w) for _ in range(c.nblocks)]
        self.blocks = nn.Sequential(*blocks)
        self.dim = f1
        self.heads = nn.ModuleDict({t.name: nn.Linear(f1, self.taskset.out_channels(t)) for t in self.taskset.tasks})

    @property
    def tasks(self) -> list[TaskConfig]:
        return self.taskset.tasks

    def forward_features(self, batch) -> tuple[Tensor, Tensor]:
        """Node tokens ``(N, C)`` (last feature map at each node's cell) and the global max pool ``(B, C)``."""
        features, positions, mask = padded_nodes(batch)
        tokens, pooled = self.forward_padded(features, positions, mask)
        return tokens[mask], pooled

    def geometry(self) -> tuple[tuple[float, float], tuple[int, int]]:
        """``(pixel_size, image_size)`` of the rebuilt image.

        Raises:
            ConfigError: neither the model's settings nor the dataset give them.
        """
        pixel_size, image_size = self.pixel_size, self.image_size
        if pixel_size is None or image_size is None:
            raise ConfigError(
                "model.pixel_size / model.image_size: the dataset has no image geometry; "
                "set both for resnet15 (e.g. pixel_size: [0.0174, 0.0174], image_size: [125, 125])"
            )
        return pixel_size, image_size

    def _slots(self, features: Tensor, positions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The ``B * N`` node slots flat: values / std and positions (zeros at padding) and each slot's event."""
        b, n, f = features.shape
        x = (features * self.inv_std.to(features.dtype)).masked_fill(~mask[..., None], 0.0).reshape(b * n, f)
        pos = positions.masked_fill(~mask[..., None], 0.0).reshape(b * n, 2)
        event = torch.arange(b, device=features.device)[:, None].expand(b, n).reshape(b * n)
        return x, pos, event

    def images(self, features: Tensor, positions: Tensor, mask: Tensor) -> Tensor:
        """(B, F, H, W) images rebuilt from the valid nodes (values / std: empty pixels stay zero)."""
        pixel_size, image_size = self.geometry()
        x, pos, event = self._slots(features, positions, mask)
        return dense_images(x, pos, event, features.shape[0], pixel_size, image_size, self.wrap_cols)

    def forward_padded(self, features: Tensor, positions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Node tokens ``(B, N, C)`` and the global max pool ``(B, C)`` of the image rebuilt from
        the valid nodes (:func:`~graphevent.nn.layers.pixels.dense_images` over the ``B * N``
        slots, padding adding zeros; values there, NaN too, are ignored). The one forward
        path, for training (on the batch padded) and export.

        Shapes:
            features: (B, N, F), positions: (B, N, 2), mask: (B, N) bool
        """
        pixel_size, image_size = self.geometry()
        b, n = features.shape[0], features.shape[1]
        x, pos, event = self._slots(features, positions, mask)
        image = dense_images(x, pos, event, b, pixel_size, image_size, self.wrap_cols)
        h = self.blocks(F.max_pool2d(F.relu(self.conv0(self.pad0(image))), 2))
        row, col = pixel_coords(pos, pixel_size, image_size)
        if self.wrap_cols:
            col = torch.remainder(col, image_size[1])
        hf, wf = h.shape[-2], h.shape[-1]
        r = torch.div(row * hf, image_size[0], rounding_mode="floor").clamp(0, hf - 1)
        cc = torch.div(col * wf, image_size[1], rounding_mode="floor").clamp(0, wf - 1)
        tokens = h[event, :, r, cc].reshape(b, n, h.shape[1])
        return tokens, h.amax(dim=(2, 3))
