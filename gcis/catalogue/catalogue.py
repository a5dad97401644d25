"""Task catalogue: the CT structures and lesions that a text prompt can select.

The catalogue is a JSON list (``tasks.json`` beside this module, described in README.md).
Each entry becomes a :class:`Task`. :class:`TaskCatalogue` looks tasks up by id, by canonical
name or by free text such as ``"L kidney"``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

CATEGORIES = ("organ", "vessel", "bone", "muscle", "gland", "lesion", "airway", "other")

# Categories whose non-tubular tasks are one connected piece, and the names among them that are not.
SINGLE_COMPONENT_CATEGORIES = ("organ", "gland", "bone", "muscle", "airway")
MULTI_COMPONENT_NAMES = frozenset({"costal_cartilages", "diaphragm"})

# SNOMED CT qualifier values of DICOM CID 244 "Laterality".
LATERALITY_CODES = {"7771000": ("left", "Left"), "24028007": ("right", "Right")}

_REQUIRED_FIELDS = {
    "id": "a positive integer",
    "name": "a snake_case string",
    "synonyms": "a list of strings",
    "category": f"one of {', '.join(CATEGORIES)}",
    "tubular": "true or false",
    "color": "a list of three integers 0-255",
    "snomed": "an object with property_category, property_type and optional laterality",
}
_SNOMED_FIELDS = ("property_category", "property_type", "laterality")
_NAME_PATTERN = re.compile(r"^[a-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*$")
_LATERALITY_WORDS = {"l": "left", "lt": "left", "left": "left", "r": "right", "rt": "right", "right": "right"}
# Characters that separate words in a prompt besides whitespace.
_SEPARATORS = re.compile(r"[_\-,;:/().]+")


MAX_DISPLAY_NAME = 64
"""Maximum length of a display name: the DICOM Segment Label (LO value representation) allows 64 characters."""


class CatalogueError(ValueError):
    """A catalogue file or task list is invalid. The message names the file and the entry."""


def normalise_prompt(text: str) -> str:
    """Return the lookup key of ``text`` used by :meth:`TaskCatalogue.find_exact`.

    The key is lower-case, and ``_ - , ; : / ( ) .`` count as spaces. ``l`` and ``lt`` become
    ``left``, ``r`` and ``rt`` become ``right``. The words are sorted so that word order does not
    matter, which makes ``"L Kidney"`` and ``"kidney_left"`` both give ``"kidney left"``.
    """
    words = _SEPARATORS.sub(" ", text.lower()).split()
    words = [_LATERALITY_WORDS.get(word, word) for word in words]
    return " ".join(sorted(words))


@dataclass(frozen=True)
class Task:
    """One segmentation target: an anatomical structure or a lesion type."""

    id: int
    name: str
    synonyms: tuple[str, ...]
    category: str
    tubular: bool
    color: tuple[int, int, int]
    # The JSON "snomed" object. Excluded from hashing because dicts are not hashable.
    snomed: dict = field(hash=False)
    laterality: str | None = None

    @property
    def display_name(self) -> str:
        """Human-readable label: the first synonym, or the name with spaces when there is none."""
        if self.synonyms:
            return self.synonyms[0]
        return self.name.replace("_", " ").capitalize()

    @property
    def single_component(self) -> bool:
        """True for a structure that is one connected piece of tissue, such as an organ, a gland or one bone.

        Tubular structures are excluded, because a thin prediction can break into pieces that
        are all true. So are lesions, which can be many, and a few collective names.
        """
        if self.tubular or self.name in MULTI_COMPONENT_NAMES:
            return False
        return self.category in SINGLE_COMPONENT_CATEGORIES

    def to_json(self) -> dict:
        """Return the task as its JSON catalogue entry."""
        return {
            "id": self.id,
            "name": self.name,
            "synonyms": list(self.synonyms),
            "category": self.category,
            "tubular": self.tubular,
            "color": list(self.color),
            "snomed": copy.deepcopy(self.snomed),
        }


class TaskCatalogue:
    """An ordered, validated collection of tasks with lookup by id, name and prompt text.

    Raises :class:`CatalogueError` when two tasks share an id or a name, or when one prompt key
    (see :func:`normalise_prompt`) would select two different tasks.
    """

    def __init__(self, tasks: Iterable[Task], source: str = "<in-memory catalogue>") -> None:
        self.tasks: tuple[Task, ...] = tuple(tasks)
        self.source = source
        self._by_id: dict[int, Task] = {}
        self._by_name: dict[str, Task] = {}
        self._by_key: dict[str, Task] = {}
        for task in self.tasks:
            self._index(task)

    def _index(self, task: Task) -> None:
        if len(task.display_name) > MAX_DISPLAY_NAME:
            raise CatalogueError(
                f"{self.source}: entry id={task.id} ({task.name!r}) has a display name of {len(task.display_name)} "
                f"characters; DICOM SEG segment labels allow {MAX_DISPLAY_NAME}. Shorten its first synonym."
            )
        other = self._by_id.get(task.id)
        if other is not None:
            raise CatalogueError(
                f"{self.source}: duplicate id {task.id} in entries {other.name!r} and {task.name!r}. "
                "Give each task its own id."
            )
        self._by_id[task.id] = task

        other = self._by_name.get(task.name)
        if other is not None:
            raise CatalogueError(
                f"{self.source}: duplicate name {task.name!r} in entries id={other.id} and id={task.id}. "
                "Give each task its own name."
            )
        self._by_name[task.name] = task

        for text in (task.name, *task.synonyms):
            key = normalise_prompt(text)
            if not key:
                raise CatalogueError(
                    f"{self.source}: entry id={task.id} ({task.name!r}) has a synonym with no words: {text!r}. "
                    "Remove it or add words."
                )
            other = self._by_key.get(key)
            if other is not None and other is not task:
                raise CatalogueError(
                    f"{self.source}: ambiguous prompt {text!r} of entry id={task.id} ({task.name!r}) "
                    f"has the same lookup key {key!r} as entry id={other.id} ({other.name!r}). "
                    "Remove or reword one of the two synonyms."
                )
            self._by_key[key] = task

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __contains__(self, name_or_id: object) -> bool:
        if isinstance(name_or_id, bool):
            return False
        if isinstance(name_or_id, int):
            return name_or_id in self._by_id
        if isinstance(name_or_id, str):
            return name_or_id in self._by_name
        return False

    def get(self, name_or_id: str | int) -> Task:
        """Return the task with this id or canonical name.

        Raises KeyError listing the closest task names when there is no such task.
        """
        if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
            if name_or_id in self._by_id:
                return self._by_id[name_or_id]
            raise KeyError(f"no task with id {name_or_id} in {self.source}. "
                           "TaskCatalogue.ids() lists the valid ids.")
        if isinstance(name_or_id, str):
            if name_or_id in self._by_name:
                return self._by_name[name_or_id]
            close = [task.name for task in self.closest(name_or_id)]
            hint = f"Close names: {', '.join(close)}." if close else "See TaskCatalogue.names() for all names."
            raise KeyError(f"unknown task name {name_or_id!r}. {hint}")
        raise TypeError(f"task lookup expects a name (str) or an id (int), got {type(name_or_id).__name__}")

    def find_exact(self, text: str) -> Task | None:
        """Return the task whose name or synonym has the same lookup key as ``text``, else None."""
        return self._by_key.get(normalise_prompt(text))

    def closest(self, text: str, n: int = 5) -> list[Task]:
        """Return up to ``n`` tasks whose lookup keys are most similar to ``text`` (difflib ratio >= 0.6)."""
        if n <= 0:
            return []
        keys = difflib.get_close_matches(normalise_prompt(text), self._by_key, n=len(self._by_key), cutoff=0.6)
        found: list[Task] = []
        for key in keys:
            task = self._by_key[key]
            if task not in found:
                found.append(task)
            if len(found) == n:
                break
        return found

    def counterpart(self, task: Task) -> Task | None:
        """Return the task of the same structure on the other side (same SNOMED property type), else None."""
        laterality = task.snomed.get("laterality")
        if laterality is None:
            return None
        for other in self.tasks:
            other_laterality = other.snomed.get("laterality")
            if (
                other_laterality is not None
                and other_laterality["code"] != laterality["code"]
                and other.category == task.category
                and other.snomed["property_type"]["code"] == task.snomed["property_type"]["code"]
            ):
                return other
        return None

    def names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def ids(self) -> list[int]:
        return [task.id for task in self.tasks]


def _entry_label(index: int, entry: object) -> str:
    """Return "entry at index 2 (id=3, name='kidney_left')" with whatever of id and name the entry has."""
    parts = []
    if isinstance(entry, dict):
        if "id" in entry:
            parts.append(f"id={entry['id']!r}")
        if "name" in entry:
            parts.append(f"name={entry['name']!r}")
    suffix = f" ({', '.join(parts)})" if parts else ""
    return f"entry at index {index}{suffix}"


def _check_code(value: object, where: str) -> str | None:
    """Return a problem description when ``value`` is not a {code, scheme, meaning} object."""
    if not isinstance(value, dict):
        return f"{where} must be an object with code, scheme and meaning"
    for key in ("code", "scheme", "meaning"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            return f"{where}.{key} must be a non-empty string"
    unknown = set(value) - {"code", "scheme", "meaning"}
    if unknown:
        return f"{where} has unknown fields {sorted(unknown)}. Allowed fields: code, scheme, meaning"
    if value["scheme"] == "SCT" and not value["code"].isdigit():
        return f"{where}.code {value['code']!r} is not a SNOMED CT concept id (digits only)"
    return None


def _entry_problem(entry: object) -> str | None:
    """Return what is wrong with one catalogue entry, or None when it is valid."""
    if not isinstance(entry, dict):
        return "must be a JSON object"
    missing = [key for key in _REQUIRED_FIELDS if key not in entry]
    if missing:
        expected = ", ".join(f"{key} as {_REQUIRED_FIELDS[key]}" for key in missing)
        return f"missing field(s) {', '.join(missing)}. Add {expected}"
    unknown = set(entry) - set(_REQUIRED_FIELDS)
    if unknown:
        return f"unknown field(s) {sorted(unknown)}. Allowed fields: {', '.join(_REQUIRED_FIELDS)}"

    task_id = entry["id"]
    if not isinstance(task_id, int) or isinstance(task_id, bool) or task_id <= 0:
        return f"id must be a positive integer, got {task_id!r}"
    name = entry["name"]
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        return f"name must be snake_case (letters, digits, single underscores, lower-case first), got {name!r}"
    synonyms = entry["synonyms"]
    if not isinstance(synonyms, list) or not all(isinstance(s, str) and s.strip() for s in synonyms):
        return "synonyms must be a list of non-empty strings"
    if entry["category"] not in CATEGORIES:
        return f"category must be one of {', '.join(CATEGORIES)}, got {entry['category']!r}"
    if not isinstance(entry["tubular"], bool):
        return f"tubular must be true or false, got {entry['tubular']!r}"
    color = entry["color"]
    if (
        not isinstance(color, list)
        or len(color) != 3
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)
    ):
        return f"color must be [r, g, b] with integers 0-255, got {color!r}"

    snomed = entry["snomed"]
    if not isinstance(snomed, dict):
        return "snomed must be an object with property_category, property_type and optional laterality"
    unknown = set(snomed) - set(_SNOMED_FIELDS)
    if unknown:
        return f"snomed has unknown fields {sorted(unknown)}. Allowed fields: {', '.join(_SNOMED_FIELDS)}"
    for key in ("property_category", "property_type"):
        if key not in snomed:
            return f"snomed.{key} is missing. Add {{\"code\": ..., \"scheme\": \"SCT\", \"meaning\": ...}}"
        problem = _check_code(snomed[key], f"snomed.{key}")
        if problem:
            return problem
    if "laterality" in snomed:
        problem = _check_code(snomed["laterality"], "snomed.laterality")
        if problem:
            return problem
        code = snomed["laterality"]["code"]
        if snomed["laterality"]["scheme"] != "SCT" or code not in LATERALITY_CODES:
            return (f"snomed.laterality must be SCT 7771000 (Left) or SCT 24028007 (Right), "
                    f"got {snomed['laterality']['scheme']} {code}")
    return None


def _task_from_entry(entry: dict) -> Task:
    laterality = None
    if "laterality" in entry["snomed"]:
        laterality = LATERALITY_CODES[entry["snomed"]["laterality"]["code"]][0]
    return Task(
        id=entry["id"],
        name=entry["name"],
        synonyms=tuple(entry["synonyms"]),
        category=entry["category"],
        tubular=entry["tubular"],
        color=tuple(entry["color"]),
        snomed=copy.deepcopy(entry["snomed"]),
        laterality=laterality,
    )


def _read_catalogue(path: Path, source: str) -> TaskCatalogue:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CatalogueError(
            f"{source}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    if not isinstance(data, list):
        raise CatalogueError(f"{source}: the top level must be a JSON list of task objects, got {type(data).__name__}")

    tasks = []
    for index, entry in enumerate(data):
        problem = _entry_problem(entry)
        if problem:
            raise CatalogueError(f"{source}: {_entry_label(index, entry)}: {problem}")
        tasks.append(_task_from_entry(entry))
    return TaskCatalogue(tasks, source=source)


@functools.lru_cache(maxsize=1)
def _load_default() -> TaskCatalogue:
    packaged = resources.files(__package__).joinpath("tasks.json")
    with resources.as_file(packaged) as path:
        return _read_catalogue(Path(path), str(path))


def load_catalogue(path: str | os.PathLike | None = None) -> TaskCatalogue:
    """Load and validate a task catalogue file, or the packaged ``tasks.json`` when ``path`` is None.

    The packaged catalogue is read once and cached. An explicit path is read on every call.
    Raises FileNotFoundError for a missing file and CatalogueError for invalid content.
    """
    if path is None:
        return _load_default()
    path = Path(path)
    return _read_catalogue(path, str(path))
