"""Encoders: a backbone to ``hidden_dim``, LeakyReLU, then ``content_dim`` (the paper's head).

Every encoder returns ``(hidden, final)``: the evaluation probes both layers, as the original
code did (its ``encoder`` output and its projection output).
"""

from __future__ import annotations

import torch
from torch import nn

from .tiers import ModelConfig

RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet10": (1, 1, 1, 1)}
"""torchvision ResNets with basic blocks: blocks per stage (resnet10: one each, about 45% of resnet18's cost)."""


class Encoder(nn.Module):
    """backbone -> hidden (hidden_dim) -> LeakyReLU(0.01) -> final (content_dim)."""

    def __init__(self, backbone: nn.Module, hidden_dim: int, content_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.LeakyReLU(0.01), nn.Linear(hidden_dim, content_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.backbone(x)
        return hidden, self.head(hidden)


def conv_backbone(widths: tuple[int, ...], out_dim: int, pool: str = "avg", resolution: int = 64) -> nn.Module:
    """Stride-2 3x3 conv + BatchNorm + ReLU blocks, then global average pooling (``avg``) or the whole
    final feature map (``flatten``: keeps where things are), and a linear layer to ``out_dim``."""
    layers: list[nn.Module] = []
    channels, side = 3, resolution
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True)]
        channels, side = width, (side + 1) // 2
    if pool == "avg":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, out_dim)]
    else:
        layers += [nn.Flatten(), nn.Linear(channels * side * side, out_dim)]
    return nn.Sequential(*layers)


def build_encoder(config: ModelConfig, resolution: int) -> Encoder:
    """The tier's encoder for ``resolution``-pixel images, freshly initialised (the paper trains from scratch)."""
    if config.encoder in RESNET_BLOCKS:
        from torchvision.models.resnet import BasicBlock, ResNet

        backbone: nn.Module = ResNet(BasicBlock, list(RESNET_BLOCKS[config.encoder]), num_classes=config.hidden_dim)
    else:
        backbone = conv_backbone(config.widths, config.hidden_dim, config.pool, resolution)
    return Encoder(backbone, config.hidden_dim, config.content_dim)
