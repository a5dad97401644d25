"""Automatic Pathway (AP) module: a router plus M sub-pathways of residual blocks."""

from __future__ import annotations

import torch
from monai.networks.blocks import UnetResBlock
from torch import nn

from gcis.network.routing import Router

# Group norm rather than instance norm: the first AP module receives 1x1x1 features for 32^3 inputs,
# where instance norm is undefined. Decoder widths must be multiples of NORM_GROUPS.
NORM_GROUPS = 4
NORM = ("group", {"num_groups": NORM_GROUPS})

# Under autocast, AP modules whose input has fewer voxels than this run in float32.
# NOTE: with bfloat16 autocast on CPU, the weight gradient of the first AP module's
# convolution (2^3 voxels for 64^3 crops) was non-finite in 4 of the first 32 steps of a
# run. The cause inside the bfloat16 convolution was not found. These modules cost almost
# nothing, so they keep full precision.
FULL_PRECISION_VOXELS = 8**3


def residual_pathway(in_channels: int, out_channels: int, blocks: int) -> nn.Sequential:
    """Build one sub-pathway: `blocks` 3x3x3 residual blocks, the first one changing the width."""
    layers = [UnetResBlock(3, in_channels, out_channels, kernel_size=3, stride=1, norm_name=NORM)]
    for _ in range(blocks - 1):
        layers.append(UnetResBlock(3, out_channels, out_channels, kernel_size=3, stride=1, norm_name=NORM))
    return nn.Sequential(*layers)


class AutomaticPathwayModule(nn.Module):
    """One decoder stage: `router` scores the M entries of `pathways` from the prompt embedding."""

    def __init__(self, in_channels: int, out_channels: int, sub_pathways: int, prompt_dim: int, blocks: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.router = Router(prompt_dim, sub_pathways)
        self.pathways = nn.ModuleList(
            residual_pathway(in_channels, out_channels, blocks) for _ in range(sub_pathways)
        )

    def run_pathway(self, index: int, features: torch.Tensor) -> torch.Tensor:
        device = features.device.type
        if torch.is_autocast_enabled(device) and features.shape[2:].numel() < FULL_PRECISION_VOXELS:
            with torch.autocast(device, enabled=False):
                return self.pathways[index](features.float())
        return self.pathways[index](features)
