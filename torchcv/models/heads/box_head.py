"""Box branch of the RoI heads: an MLP over pooled RoI features and the class/box predictor."""
from __future__ import annotations

from typing import Tuple

import torch.nn.functional as F
from torch import Tensor, nn



class TwoMLPHead(nn.Module):
    """Flatten the pooled (C, S, S) RoI features, then two fully connected layers with ReLU."""

    def __init__(self, in_channels: int, representation_size: int = 1024):
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)
        self.out_channels = representation_size

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(start_dim=1)
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class FastRCNNPredictor(nn.Module):
    """Class scores (``num_classes`` including background) and per-class box deltas."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)
