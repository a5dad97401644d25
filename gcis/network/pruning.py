"""Pruning: a task-specific network that keeps only the sub-pathways one prompt routes to.

Routing at inference is hard, so a prompt's output depends only on the encoder, the
stem, the deconvolutions, the 7 sub-pathways it picks and the head weights generated
from its embedding. The pruned network contains exactly those, computes the same
operations in the same order, and so gives the same logits as the full network.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from gcis.network.config import NUM_AP_MODULES, NetworkConfig
from gcis.network.gcis_net import (
    GCISNet,
    PromptHead,
    ap_input_channels,
    build_deconvs,
    build_encoder,
    build_stem,
    check_image,
    encode,
    stage_input,
)
from gcis.network.pathways import residual_pathway


class TaskSpecificNet(nn.Module):
    """Single-task gCIS network: image (B, 1, D, H, W) to logits (B, 1, D, H, W)."""

    def __init__(self, config: NetworkConfig, route: tuple[int, ...]):
        super().__init__()
        if len(route) != NUM_AP_MODULES or any(not 0 <= i < config.sub_pathways for i in route):
            raise ValueError(
                f"route {route} is invalid: expected {NUM_AP_MODULES} sub-pathway indices in 0..{config.sub_pathways - 1}"
            )
        self.config = config
        self.route = tuple(int(i) for i in route)
        self.encoder = build_encoder(config)
        self.stem = build_stem(config)
        in_channels = ap_input_channels(config)
        self.pathways = nn.ModuleList(
            residual_pathway(in_channels[k], config.decoder_channels[k], config.blocks_per_pathway)
            for k in range(NUM_AP_MODULES)
        )
        self.deconvs = build_deconvs(config)
        channels, hidden = config.decoder_channels[-1], config.head_hidden
        self.head_w1 = nn.Parameter(torch.zeros(hidden, channels, 1, 1, 1))
        self.head_b1 = nn.Parameter(torch.zeros(hidden))
        self.head_w2 = nn.Parameter(torch.zeros(1, hidden, 1, 1, 1))
        self.head_b2 = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_image(image, self.config)
        skips = encode(self.encoder, self.stem, image)
        features = None
        for level, pathway in enumerate(self.pathways):
            features = pathway(stage_input(self.deconvs, level, features, skips))
        weights = (self.head_w1, self.head_b1, self.head_w2, self.head_b2)
        return PromptHead.apply_weights(features, weights)


@torch.no_grad()
def prune(model: GCISNet, prompt: torch.Tensor) -> TaskSpecificNet:
    """Return the task-specific network of one prompt embedding (prompt_dim,)."""
    was_training = model.training
    model.eval()
    try:
        route = model.route(prompt.reshape(1, -1)).prefix(0, NUM_AP_MODULES)
        pruned = TaskSpecificNet(model.config, route)
        pruned.encoder = copy.deepcopy(model.encoder)
        pruned.stem = copy.deepcopy(model.stem)
        pruned.deconvs = copy.deepcopy(model.deconvs)
        pruned.pathways = nn.ModuleList(
            copy.deepcopy(ap.pathways[index]) for ap, index in zip(model.ap_modules, route)
        )
        w1, b1, w2, b2 = model.head.task_weights(prompt.reshape(-1))
        pruned.head_w1.copy_(w1)
        pruned.head_b1.copy_(b1)
        pruned.head_w2.copy_(w2)
        pruned.head_b2.copy_(b2)
    finally:
        model.train(was_training)
    return pruned.eval()
