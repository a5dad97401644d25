"""The gCIS task catalogue: CT structures and lesions with names, synonyms and SNOMED CT codes."""

from gcis.catalogue.catalogue import (
    CATEGORIES,
    CatalogueError,
    Task,
    TaskCatalogue,
    load_catalogue,
    normalise_prompt,
)

__all__ = ["CATEGORIES", "CatalogueError", "Task", "TaskCatalogue", "load_catalogue", "normalise_prompt"]
