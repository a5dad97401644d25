"""Prompt encoding and resolution: text encoder, stored catalogue embeddings, prompt-to-task matching."""

from gcis.prompts.embeddings import PromptEmbeddings, embed_catalogue, task_prompt_text
from gcis.prompts.resolve import AmbiguousPromptError, PromptResolver, Resolution, UnknownPromptError
from gcis.prompts.text_encoder import DEFAULT_TEXT_ENCODER, TextEncoder, resolve_model_path

__all__ = [
    "AmbiguousPromptError",
    "DEFAULT_TEXT_ENCODER",
    "PromptEmbeddings",
    "PromptResolver",
    "Resolution",
    "TextEncoder",
    "UnknownPromptError",
    "embed_catalogue",
    "resolve_model_path",
    "task_prompt_text",
]
