"""Widen the decoder of a trained gCIS network without changing what it computes.

Each decoder channel of the trained network becomes `r` adjacent copies in the wider one.
The copies keep the original channel's incoming weights, and the weights that read them
are divided by `r`, so every sum that a layer forms is the same as before. Because the
copies are adjacent, each of the 4 group-norm groups contains the copies of exactly its
former channels, with the same mean and variance. The wider network therefore returns the
same logits up to float rounding, and training starts from the trained network's accuracy
with more capacity.

Copies that stay identical also receive identical gradients and would never diverge, so
`noise` adds a small Gaussian perturbation to the widened weights.
"""

from __future__ import annotations

import logging

import torch

from gcis.network.config import NUM_AP_MODULES
from gcis.network.gcis_net import GCISNet, ap_input_channels, skip_channels

logger = logging.getLogger(__name__)

# A segment of a layer's input channels: (trained width, copies per channel).
Segment = tuple[int, int]


def widening_factors(old: tuple[int, ...], new: tuple[int, ...]) -> list[int]:
    """Return the copies per channel of each AP module; raise ValueError unless each new width is a multiple."""
    if len(new) != NUM_AP_MODULES:
        raise ValueError(f"decoder widths {tuple(new)} must have {NUM_AP_MODULES} values, one per AP module")
    factors = []
    for k, (before, after) in enumerate(zip(old, new)):
        if after < before or after % before:
            raise ValueError(
                f"decoder width {after} of AP module {k + 1} is invalid: it must be a multiple of the trained "
                f"width {before} (trained widths {tuple(old)})"
            )
        factors.append(after // before)
    return factors


def copy_outputs(tensor: torch.Tensor, copies: int) -> torch.Tensor:
    """Repeat each output channel (dim 0) `copies` times, the copies adjacent."""
    return tensor.repeat_interleave(copies, dim=0)


def copy_inputs(tensor: torch.Tensor, segments: list[Segment], dim: int = 1) -> torch.Tensor:
    """Repeat each input channel of each segment `copies` times and divide it by `copies`."""
    parts = []
    for part, (_, copies) in zip(torch.split(tensor, [width for width, _ in segments], dim=dim), segments):
        parts.append(part.repeat_interleave(copies, dim=dim) / copies)
    return torch.cat(parts, dim=dim)


def ap_input_segments(model: GCISNet, factors: list[int]) -> list[list[Segment]]:
    """Return the input segments of each AP module: the upsampled parent's channels, then the skip's."""
    config = model.config
    skips = skip_channels(config)
    segments: list[list[Segment]] = [[(ap_input_channels(config)[0], 1)]]
    for k in range(1, NUM_AP_MODULES):
        parent = (config.decoder_channels[k - 1], factors[k - 1])
        # The sixth module's skip is the full-resolution stem, which is as wide as the sixth module.
        skip_copies = factors[5] if k == 5 else 1
        segments.append([parent, (skips[k], skip_copies)] if skips[k] else [parent])
    return segments


def widen_residual_block(state: dict, prefix: str, inputs: list[Segment], copies: int) -> dict:
    """Return the widened tensors of one UnetResBlock (conv1, conv2, optional conv3, their norms)."""
    widened = {}
    width = sum(w for w, _ in inputs)
    for name in ("conv1.conv.weight", "conv3.conv.weight"):
        if prefix + name in state:
            widened[prefix + name] = copy_outputs(copy_inputs(state[prefix + name], inputs), copies)
    out_width = state[prefix + "conv1.conv.weight"].shape[0]
    conv2 = state[prefix + "conv2.conv.weight"]
    widened[prefix + "conv2.conv.weight"] = copy_outputs(copy_inputs(conv2, [(out_width, copies)]), copies)
    for norm in ("norm1", "norm2", "norm3"):
        for field in ("weight", "bias"):
            key = f"{prefix}{norm}.{field}"
            if key in state:
                widened[key] = copy_outputs(state[key], copies)
    logger.debug("widened %s: %d input channels, output x%d", prefix, width, copies)
    return widened


def widen_head(state: dict, model: GCISNet, copies: int) -> dict:
    """Return the head generator's rows for a last AP module with `copies` times as many channels."""
    channels, hidden = model.head.channels, model.head.hidden
    weight, bias = state["head.generator.weight"], state["head.generator.bias"]
    widened = {}
    for name, rows in (("weight", weight), ("bias", bias)):
        first = rows[: channels * hidden].reshape(hidden, channels, *rows.shape[1:])
        first = copy_inputs(first, [(channels, copies)], dim=1).reshape(hidden * channels * copies, *rows.shape[1:])
        widened[f"head.generator.{name}"] = torch.cat([first, rows[channels * hidden:]])
    return widened


def add_noise(state: dict, keys: list[str], noise: float, seed: int) -> None:
    """Add Gaussian noise of `noise` times each tensor's standard deviation to the named weights."""
    generator = torch.Generator().manual_seed(seed)
    for key in keys:
        tensor = state[key]
        scale = noise * float(tensor.float().std())
        state[key] = tensor + scale * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)


def widen_decoder(model: GCISNet, channels: tuple[int, ...], noise: float = 0.0, seed: int = 0) -> GCISNet:
    """Return a copy of `model` whose AP modules have the widths `channels`, computing the same logits.

    Each width must be a multiple of the trained one. The encoder, the routers and so every
    task's route are unchanged. With `noise` > 0 the widened weights are perturbed by that
    fraction of their standard deviation, which changes the logits slightly.
    """
    old = model.config.decoder_channels
    factors = widening_factors(old, tuple(channels))
    description = f"{model.config.description} Decoder widened from {tuple(old)} to {tuple(channels)} channels.".strip()
    config = model.config.replace(decoder_channels=tuple(channels), description=description)
    wider = GCISNet(config)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    target = wider.state_dict()
    if set(state) != set(target):
        changed = sorted(set(state) ^ set(target))
        raise ValueError(
            f"decoder widths {tuple(channels)} change the layers of the network ({', '.join(changed[:4])}); "
            f"keep each AP module's input and output widths equal where they are equal in {tuple(old)}"
        )

    widened = widen_residual_block(state, "stem.", [(model.config.in_channels, 1)], factors[5])
    # Weights whose output channels were copied; only these need noise to break the symmetry.
    perturbed = [key for key in widened if key.endswith("conv.weight")] if factors[5] > 1 else []
    segments = ap_input_segments(model, factors)
    for k in range(NUM_AP_MODULES):
        for p in range(config.sub_pathways):
            for b in range(config.blocks_per_pathway):
                inputs = segments[k] if b == 0 else [(old[k], factors[k])]
                block = widen_residual_block(state, f"ap_modules.{k}.pathways.{p}.{b}.", inputs, factors[k])
                widened.update(block)
                if factors[k] > 1:
                    perturbed.extend(key for key in block if key.endswith("conv.weight"))

    # A transposed convolution's weight is (input channels, output channels, kernel).
    for k in range(NUM_AP_MODULES - 2):
        weight = copy_inputs(state[f"deconvs.{k}.weight"], [(old[k], factors[k])], dim=0)
        widened[f"deconvs.{k}.weight"] = weight.repeat_interleave(factors[k], dim=1)
        widened[f"deconvs.{k}.bias"] = copy_outputs(state[f"deconvs.{k}.bias"], factors[k])
        if factors[k] > 1:
            perturbed.append(f"deconvs.{k}.weight")
    widened.update(widen_head(state, model, factors[-1]))

    state.update(widened)
    if noise > 0:
        add_noise(state, perturbed, noise, seed)
    wider.load_state_dict(state)
    wider.routing_noise = model.routing_noise
    logger.info("widened the decoder from %s to %s channels", tuple(old), tuple(channels))
    return wider
