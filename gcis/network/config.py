"""Network size settings for gCIS and the named presets that hold them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources

NUM_AP_MODULES = 7
"""Automatic Pathway modules in the decoder: five at the encoder scales 1/32 to 1/2, two at full resolution."""

_PRESET_FILE = "presets.json"


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of one gCIS network; every field is a plain JSON value so configs travel in checkpoints."""

    feature_size: int = 48
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    roi_size: tuple[int, int, int] = (128, 128, 128)
    sub_pathways: int = 6
    decoder_channels: tuple[int, ...] = (192, 96, 64, 48, 48, 32, 32)
    blocks_per_pathway: int = 1
    head_hidden: int = 16
    prompt_dim: int = 384
    in_channels: int = 1
    gumbel_tau: float = 1.0
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("depths", "num_heads", "roi_size", "decoder_channels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field and the accepted values."""
        if self.feature_size <= 0 or self.feature_size % 12 != 0:
            raise ValueError(
                f"feature_size={self.feature_size} is invalid: the Swin encoder needs a positive multiple of 12"
            )
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            raise ValueError(f"depths={self.depths} and num_heads={self.num_heads} must each have 4 stages")
        if len(self.decoder_channels) != NUM_AP_MODULES:
            raise ValueError(
                f"decoder_channels={self.decoder_channels} must have {NUM_AP_MODULES} values, one per AP module"
            )
        if any(c <= 0 or c % 4 for c in self.decoder_channels):
            raise ValueError(
                f"decoder_channels={self.decoder_channels} is invalid: each width must be a positive multiple of 4 "
                "(the group norm of the residual blocks uses 4 groups)"
            )
        if self.sub_pathways < 1:
            raise ValueError(f"sub_pathways={self.sub_pathways} must be at least 1")
        if len(self.roi_size) != 3 or any(s % 32 for s in self.roi_size):
            raise ValueError(
                f"roi_size={self.roi_size} is invalid: use three sizes that are multiples of 32 "
                "(the encoder downsamples 5 times by 2)"
            )
        if self.blocks_per_pathway < 1 or self.head_hidden < 1 or self.prompt_dim < 1:
            raise ValueError("blocks_per_pathway, head_hidden and prompt_dim must be at least 1")

    def replace(self, **changes) -> "NetworkConfig":
        """Return a copy with the given fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "NetworkConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown network config keys {unknown}; valid keys are {sorted(known)}")
        return cls(**values)


def preset_names() -> list[str]:
    return sorted(_load_presets())


def load_preset(name: str, **overrides) -> NetworkConfig:
    """Build the config of a named preset (see presets.json), with optional field overrides."""
    presets = _load_presets()
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
    values = dict(presets[name])
    values.update(overrides)
    return NetworkConfig.from_dict(values)


def _load_presets() -> dict:
    text = resources.files(__package__).joinpath(_PRESET_FILE).read_text(encoding="utf-8")
    return json.loads(text)
