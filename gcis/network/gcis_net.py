"""The gCIS network: a Swin encoder shared by all tasks and a prompt-routed decoder of 7 AP modules.

Shapes: images are (B, 1, D, H, W) with each spatial size a multiple of 32. Prompt
embeddings are (T, prompt_dim), and logits are (B, T, D, H, W), one binary mask per prompt.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import UnetResBlock
from monai.networks.nets.swin_unetr import SwinTransformer
from torch import nn
from torch.nn import functional as F

from gcis.network.config import NUM_AP_MODULES, NetworkConfig
from gcis.network.pathways import NORM, AutomaticPathwayModule
from gcis.network.routing import Routes, sample_straight_through, select_hard

HEAD_NEGATIVE_SLOPE = 0.01


def build_encoder(config: NetworkConfig) -> SwinTransformer:
    """Build the 3D Swin image encoder (MONAI's SwinUNETR encoder: 2x2x2 patches, 4 stages)."""
    return SwinTransformer(
        in_chans=config.in_channels,
        embed_dim=config.feature_size,
        window_size=(config.window_size,) * 3,
        patch_size=(2, 2, 2),
        depths=config.depths,
        num_heads=config.num_heads,
        spatial_dims=3,
    )


def build_stem(config: NetworkConfig) -> UnetResBlock:
    """Build the full-resolution image block whose features join the sixth AP module."""
    return UnetResBlock(3, config.in_channels, config.decoder_channels[5], kernel_size=3, stride=1, norm_name=NORM)


def build_deconvs(config: NetworkConfig) -> nn.ModuleList:
    """Build the deconvolutions that join AP modules 1-2, 2-3, 3-4, 4-5 and 5-6 (modules 6 and 7 share full resolution)."""
    ch = config.decoder_channels
    return nn.ModuleList(nn.ConvTranspose3d(ch[k], ch[k], kernel_size=2, stride=2) for k in range(5))


def skip_channels(config: NetworkConfig) -> list[int]:
    """Return the width of the skip features that each AP module reads (0 for the first and the last)."""
    fs = config.feature_size
    # Skips of AP modules 2..6: Swin stages at 1/16, 1/8, 1/4, 1/2 and the full-resolution stem.
    return [0, 8 * fs, 4 * fs, 2 * fs, fs, config.decoder_channels[5], 0]


def ap_input_channels(config: NetworkConfig) -> list[int]:
    """Return the input width of each AP module: the previous module's output plus its skip features."""
    ch = config.decoder_channels
    skips = skip_channels(config)
    return [16 * config.feature_size] + [ch[k - 1] + skips[k] for k in range(1, NUM_AP_MODULES)]


def encode(encoder: SwinTransformer, stem: nn.Module, image: torch.Tensor) -> list[torch.Tensor]:
    """Return the skip features for AP modules 1..6, deepest first (the Swin bottleneck first)."""
    hidden = encoder(image, normalize=True)
    return [hidden[4], hidden[3], hidden[2], hidden[1], hidden[0], stem(image)]


def stage_input(deconvs: nn.ModuleList, level: int, parent: torch.Tensor | None, skips: list[torch.Tensor]) -> torch.Tensor:
    """Build the input of AP module `level` (0-based) from its parent's output and the skip features."""
    if level == 0:
        return skips[0]
    if level == NUM_AP_MODULES - 1:
        return parent
    upsampled = deconvs[level - 1](parent)
    return torch.cat([upsampled, skips[level]], dim=1)


def check_image(image: torch.Tensor, config: NetworkConfig) -> None:
    """Raise ValueError if image is not (B, in_channels, D, H, W) with sizes that are multiples of 32."""
    if image.ndim != 5 or image.shape[1] != config.in_channels:
        raise ValueError(
            f"image shape {tuple(image.shape)} is invalid: expected (B, {config.in_channels}, D, H, W)"
        )
    if any(s % 32 for s in image.shape[2:]):
        raise ValueError(
            f"image spatial shape {tuple(image.shape[2:])} is invalid: each size must be a multiple of 32; "
            "pad the input or use a sliding-window inferer with such a roi_size"
        )


class PromptHead(nn.Module):
    """Output layer whose weights are generated from the prompt embedding.

    Hard routing alone cannot tell apart two tasks whose prompts pick the same 7
    sub-pathways, so each prompt also gets its own small voxel-wise MLP
    (channels -> hidden -> 1 logit), as in dynamic-head segmentation models.
    """

    def __init__(self, prompt_dim: int, channels: int, hidden: int):
        super().__init__()
        self.channels = channels
        self.hidden = hidden
        self.generator = nn.Linear(prompt_dim, channels * hidden + hidden + hidden + 1)

    def task_weights(self, prompt: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return (w1, b1, w2, b2) as 1x1x1 convolution weights for one prompt embedding (D,)."""
        params = self.generator(prompt)
        c, h = self.channels, self.hidden
        w1, b1, w2, b2 = torch.split(params, [c * h, h, h, 1])
        return w1.view(h, c, 1, 1, 1), b1, w2.view(1, h, 1, 1, 1), b2

    @staticmethod
    def apply_weights(features: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        w1, b1, w2, b2 = weights
        # Leaky, so that a hidden unit that is negative everywhere for a task still passes a gradient.
        hidden = F.leaky_relu(F.conv3d(features, w1, b1), HEAD_NEGATIVE_SLOPE)
        return F.conv3d(hidden, w2, b2)


class GCISNet(nn.Module):
    """Prompt-routed segmentation network (see the module docstring for shapes)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config)
        self.stem = build_stem(config)
        in_channels = ap_input_channels(config)
        self.ap_modules = nn.ModuleList(
            AutomaticPathwayModule(
                in_channels[k],
                config.decoder_channels[k],
                config.sub_pathways,
                config.prompt_dim,
                config.blocks_per_pathway,
            )
            for k in range(NUM_AP_MODULES)
        )
        self.deconvs = build_deconvs(config)
        self.head = PromptHead(config.prompt_dim, config.decoder_channels[-1], config.head_hidden)
        # Scale of the Gumbel noise of training-mode routing; a trainer may anneal it towards 0.
        self.routing_noise = 1.0

    # Routing

    def routing_logits(self, prompts: torch.Tensor) -> torch.Tensor:
        """Return router logits (T, modules, M) for prompt embeddings (T, prompt_dim), always in float32.

        The margins between the best two sub-pathways can be below 0.01, finer than bfloat16
        resolves. Under bfloat16 autocast a route could then differ from the float32 route.
        """
        with torch.autocast(prompts.device.type, enabled=False):
            prompts = prompts.float()
            return torch.stack([ap.router(prompts) for ap in self.ap_modules], dim=1)

    def route(self, prompts: torch.Tensor) -> Routes:
        """Choose the sub-pathways of each prompt: sampled in training mode, highest score otherwise."""
        logits = self.routing_logits(prompts)
        if not self.training:
            return Routes(indices=select_hard(logits))
        indices, gates = sample_straight_through(logits, self.config.gumbel_tau, self.routing_noise)
        return Routes(indices=indices, gates=gates)

    # Forward pass

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Return the skip features for AP modules 1..6, deepest first."""
        check_image(image, self.config)
        return encode(self.encoder, self.stem, image)

    def decode(self, skips: list[torch.Tensor], routes: Routes, prompts: torch.Tensor) -> torch.Tensor:
        """Run the decoder once per distinct route prefix; return logits (B, T, D, H, W).

        Tasks whose routes agree on the first k modules share the work of those k
        modules, so N tasks cost one decoder pass per distinct prefix, not N passes.
        The prefix tree is walked depth first and each task's features become logits
        at once, so at inference the live tensors are those of one root-to-leaf path
        plus one logit map per task, whatever the number of tasks.
        """
        logits: list[torch.Tensor | None] = [None] * prompts.shape[0]
        self._decode_subtree(0, None, list(range(prompts.shape[0])), skips, routes, prompts, logits)
        return torch.cat(logits, dim=1)

    def _decode_subtree(
        self,
        level: int,
        parent: torch.Tensor | None,
        tasks: list[int],
        skips: list[torch.Tensor],
        routes: Routes,
        prompts: torch.Tensor,
        logits: list[torch.Tensor | None],
    ) -> None:
        """Decode `tasks`, which share the route prefix that produced `parent`, from AP module `level` on."""
        stage = stage_input(self.deconvs, level, parent, skips)
        children: dict[int, list[int]] = {}
        for task in tasks:
            children.setdefault(int(routes.indices[task, level]), []).append(task)

        for pathway, group in children.items():
            features = self.ap_modules[level].run_pathway(pathway, stage)
            if routes.gates is not None:
                # Value exactly 1.0; carries the straight-through gradient to each sharing task's router.
                gate = (routes.gates[group, level] - 1.0).sum() + 1.0
                features = features * gate
            if level == NUM_AP_MODULES - 1:
                for task in group:
                    logits[task] = self.head.apply_weights(features, self.head.task_weights(prompts[task]))
            else:
                self._decode_subtree(level + 1, features, group, skips, routes, prompts, logits)
            del features

    def forward(self, image: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """Return logits (B, T, D, H, W) for image (B, 1, D, H, W) and prompt embeddings (T, prompt_dim)."""
        prompts = self._check_prompts(prompts)
        routes = self.route(prompts)
        skips = self.encode(image)
        return self.decode(skips, routes, prompts)

    # Checks

    def _check_prompts(self, prompts: torch.Tensor) -> torch.Tensor:
        if prompts.ndim == 1:
            prompts = prompts.unsqueeze(0)
        if prompts.ndim != 2 or prompts.shape[1] != self.config.prompt_dim:
            raise ValueError(
                f"prompt embeddings of shape {tuple(prompts.shape)} do not fit this network: expected "
                f"(T, {self.config.prompt_dim}); embed prompts with the text encoder the weights were trained with"
            )
        return prompts
