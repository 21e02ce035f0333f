"""A plain multi-layer perceptron, the building block of heads and decoders."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """``Linear -> [norm] -> act -> dropout`` repeated, with a plain final ``Linear``.

    Args:
        in_channels: size of the input.
        hidden: sizes of the hidden layers (may be empty: then one ``Linear``).
        out_channels: size of the output.
        act: activation class (default ``nn.GELU``).
        norm: normalisation class applied to hidden layers (``nn.LayerNorm`` or ``None``).
        dropout: dropout after each hidden activation (default 0).

    Shapes:
        x: (*, in_channels) -> (*, out_channels)
    """

    def __init__(
        self,
        in_channels: int,
        hidden: Sequence[int],
        out_channels: int,
        act: type[nn.Module] = nn.GELU,
        norm: type[nn.Module] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        layers: list[nn.Module] = []
        size = in_channels
        for h in hidden:
            layers.append(nn.Linear(size, h))
            if norm is not None:
                layers.append(norm(h))
            layers.append(act())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = h
        layers.append(nn.Linear(size, out_channels))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.net:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def __repr__(self) -> str:
        sizes = [m.out_features for m in self.net if isinstance(m, nn.Linear)]
        return f"{self.__class__.__name__}({self.in_channels} -> {' -> '.join(map(str, sizes))})"
