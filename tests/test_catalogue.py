"""Tests of the task catalogue: the packaged tasks.json, its codes and the loader's checks."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from gcis.catalogue import CATEGORIES, CatalogueError, TaskCatalogue, load_catalogue, normalise_prompt
from gcis.catalogue.catalogue import Task

CATALOGUE_DIR = Path(__file__).resolve().parents[1] / "gcis" / "catalogue"
TOTALSEG_LABELS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator" / "example_seg_labels_total_v2.json"
)
# TotalSegmentator v2 classes without a catalogue entry, because no code could be verified.
TOTALSEG_LEFT_OUT = {64}

OPENKBP_NAMES = {
    "Brainstem": "brainstem",
    "SpinalCord": "spinal_cord",
    "RightParotid": "parotid_gland_right",
    "LeftParotid": "parotid_gland_left",
    "Esophagus": "esophagus",
    "Larynx": "larynx",
    "Mandible": "mandible",
}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def _entry(**overrides):
    entry = {
        "id": 1,
        "name": "spleen",
        "synonyms": ["Spleen"],
        "category": "organ",
        "tubular": False,
        "color": [10, 20, 30],
        "snomed": {
            "property_category": {"code": "91723000", "scheme": "SCT", "meaning": "Anatomical Structure"},
            "property_type": {"code": "78961009", "scheme": "SCT", "meaning": "Spleen"},
        },
    }
    entry.update(overrides)
    return entry


def _write(tmp_path, entries, name="tasks.json"):
    path = tmp_path / name
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


# ---- content of the packaged catalogue ----

def test_catalogue_has_at_least_117_tasks(catalogue):
    assert len(catalogue) >= 117


def test_every_task_has_type_code(catalogue):
    for task in catalogue:
        code = task.snomed["property_type"]
        assert code["scheme"] == "SCT", task.name
        assert code["code"].isdigit(), task.name
        assert code["meaning"].strip(), task.name


def test_type_codes_unique_per_laterality(catalogue):
    counts = Counter((task.snomed["property_type"]["code"], task.laterality) for task in catalogue)
    shared = {key: count for key, count in counts.items() if count > 1}
    assert shared == {}


def test_categories_valid(catalogue):
    for task in catalogue:
        assert task.category in CATEGORIES, task.name


def test_property_category_follows_category(catalogue):
    for task in catalogue:
        expected = "49755003" if task.category == "lesion" else "91723000"
        assert task.snomed["property_category"]["code"] == expected, task.name


def test_laterality_matches_name(catalogue):
    for task in catalogue:
        side = re.search(r"_(left|right)(_|$)", task.name)
        assert task.laterality == (side.group(1) if side else None), task.name


def test_vessels_are_tubular(catalogue):
    for task in catalogue:
        if task.category == "vessel":
            assert task.tubular, task.name


def test_colors_in_range(catalogue):
    for task in catalogue:
        assert len(task.color) == 3, task.name
        assert all(0 <= channel <= 255 for channel in task.color), task.name


def test_display_names_short(catalogue):
    for task in catalogue:
        assert 0 < len(task.display_name) <= 64, task.name


def test_display_name_reads_naturally(catalogue):
    assert catalogue.get("kidney_left").display_name == "Left kidney"


def test_ids_1_to_117_match_totalsegmentator(catalogue):
    if not TOTALSEG_LABELS.exists():
        pytest.skip(f"TotalSegmentator label map not found at {TOTALSEG_LABELS}")
    labels = {int(key): value for key, value in json.loads(TOTALSEG_LABELS.read_text()).items()}
    assert len(labels) == 117
    for label_id, name in labels.items():
        if label_id in TOTALSEG_LEFT_OUT:
            assert label_id not in catalogue
            continue
        assert catalogue.get(label_id).name == name


def test_low_ids_reserved_for_totalsegmentator(catalogue):
    names_1_to_117 = [task.name for task in catalogue if task.id <= 117]
    assert len(names_1_to_117) == 117 - len(TOTALSEG_LEFT_OUT)


def _pydicom_sct_meanings():
    """Return {SNOMED CT code: set of meanings} from pydicom's DICOM code dictionary."""
    pytest.importorskip("pydicom")
    from pydicom.sr.codedict import codes

    meanings = {}
    for keyword in codes.SCT.dir():
        code = getattr(codes.SCT, keyword)
        meanings.setdefault(code.value, set()).add(code.meaning)
    return meanings


def test_codes_match_pydicom(catalogue):
    meanings = _pydicom_sct_meanings()
    for task in catalogue:
        for key in ("property_category", "property_type", "laterality"):
            code = task.snomed.get(key)
            if code is not None and code["code"] in meanings:
                assert code["meaning"] in meanings[code["code"]], f"{task.name} {key}"


def test_category_codes_from_pydicom():
    pytest.importorskip("pydicom")
    from pydicom.sr.codedict import codes

    assert codes.SCT.AnatomicalStructure.value == "91723000"
    assert codes.SCT.MorphologicallyAbnormalStructure.value == "49755003"
    assert codes.SCT.Left.value == "7771000"
    assert codes.SCT.Right.value == "24028007"


def test_readme_lists_codes_outside_pydicom(catalogue):
    known = _pydicom_sct_meanings()
    readme = (CATALOGUE_DIR / "README.md").read_text(encoding="utf-8")
    for task in catalogue:
        code = task.snomed["property_type"]["code"]
        if code not in known:
            assert re.search(rf"\b{code}\b", readme), f"{task.name} {code}"


# ---- lookup ----

@pytest.mark.parametrize("openkbp_name, task_name", sorted(OPENKBP_NAMES.items()))
def test_openkbp_names_found(catalogue, openkbp_name, task_name):
    task = catalogue.find_exact(openkbp_name)
    assert task is not None
    assert task.name == task_name


@pytest.mark.parametrize("prompt", ["Left Kidney", "kidney left", "L kidney", "kidney_left", "lt kidney", "kidney-left"])
def test_left_kidney_prompts(catalogue, prompt):
    assert catalogue.find_exact(prompt).name == "kidney_left"


@pytest.mark.parametrize(
    "task_name, other_name",
    [("kidney_left", "kidney_right"), ("parotid_gland_right", "parotid_gland_left"), ("lung_upper_lobe_left", "lung_upper_lobe_right")],
)
def test_counterpart_other_side(catalogue, task_name, other_name):
    assert catalogue.counterpart(catalogue.get(task_name)).name == other_name


@pytest.mark.parametrize("task_name", ["liver", "lung_middle_lobe_right"])
def test_counterpart_none(catalogue, task_name):
    assert catalogue.counterpart(catalogue.get(task_name)) is None


def test_right_kidney_prompt(catalogue):
    assert catalogue.find_exact("right kidney").name == "kidney_right"


@pytest.mark.parametrize(
    "prompt, task_name",
    [
        ("IVC", "inferior_vena_cava"),
        ("SMA", "superior_mesenteric_artery"),
        ("LAD", "left_anterior_descending_artery"),
        ("R ICA", "internal_carotid_artery_right"),
        ("left vertebral artery", "vertebral_artery_left"),
        ("right renal artery", "renal_artery_right"),
        ("L1", "vertebrae_L1"),
        ("left 7th rib", "rib_left_7"),
        ("liver tumor", "liver_tumour"),
        ("pulmonary nodule", "lung_nodule"),
    ],
)
def test_prompts_and_abbreviations(catalogue, prompt, task_name):
    assert catalogue.find_exact(prompt).name == task_name


def test_find_exact_unknown_is_none(catalogue):
    assert catalogue.find_exact("flux capacitor") is None


def test_normalise_prompt_examples():
    assert normalise_prompt("Left Kidney") == "kidney left"
    assert normalise_prompt("  kidney__LT ") == "kidney left"
    assert normalise_prompt("R. parotid") == "parotid right"


def test_get_by_id_and_name(catalogue):
    assert catalogue.get(3) is catalogue.get("kidney_left")


def test_unknown_name_lists_close_tasks(catalogue):
    with pytest.raises(KeyError) as error:
        catalogue.get("kidny_left")
    assert "kidney_left" in str(error.value)


def test_unknown_id_raises(catalogue):
    with pytest.raises(KeyError, match="no task with id 99999"):
        catalogue.get(99999)


def test_closest_suggests_similar(catalogue):
    names = [task.name for task in catalogue.closest("spleeen")]
    assert names[0] == "spleen"


def test_contains_name_and_id(catalogue):
    assert "liver" in catalogue
    assert 5 in catalogue
    assert "flux_capacitor" not in catalogue
    assert True not in catalogue


def test_names_and_ids_align(catalogue):
    assert len(catalogue.names()) == len(catalogue.ids()) == len(catalogue)
    assert catalogue.get(catalogue.ids()[0]).name == catalogue.names()[0]


def test_default_catalogue_cached():
    assert load_catalogue() is load_catalogue()


# ---- JSON form ----

def test_to_json_round_trips(catalogue):
    entries = json.loads((CATALOGUE_DIR / "tasks.json").read_text(encoding="utf-8"))
    assert [task.to_json() for task in catalogue] == entries


def test_to_json_reloads(tmp_path, catalogue):
    path = _write(tmp_path, [task.to_json() for task in catalogue])
    assert list(load_catalogue(path)) == list(catalogue)


def test_to_json_is_a_copy(catalogue):
    task = catalogue.get("liver")
    task.to_json()["snomed"]["property_type"]["code"] = "0"
    assert task.snomed["property_type"]["code"] == "10200004"


def test_task_is_hashable(catalogue):
    assert len(set(catalogue)) == len(catalogue)


# ---- validation of broken files ----

def test_duplicate_id_names_file_and_entry(tmp_path):
    second = _entry(name="liver", snomed=_entry()["snomed"] | {
        "property_type": {"code": "10200004", "scheme": "SCT", "meaning": "Liver"}})
    path = _write(tmp_path, [_entry(), second])
    with pytest.raises(CatalogueError) as error:
        load_catalogue(path)
    message = str(error.value)
    assert str(path) in message
    assert "duplicate id 1" in message
    assert "'liver'" in message


def test_duplicate_name_names_file_and_entry(tmp_path):
    path = _write(tmp_path, [_entry(), _entry(id=2, synonyms=[])])
    with pytest.raises(CatalogueError) as error:
        load_catalogue(path)
    message = str(error.value)
    assert str(path) in message
    assert "duplicate name 'spleen'" in message
    assert "id=2" in message


def test_missing_field_names_file_and_entry(tmp_path):
    entry = _entry(id=7, name="pancreas")
    del entry["tubular"]
    path = _write(tmp_path, [entry])
    with pytest.raises(CatalogueError) as error:
        load_catalogue(path)
    message = str(error.value)
    assert str(path) in message
    assert "id=7" in message
    assert "'pancreas'" in message
    assert "tubular" in message


def test_missing_type_code_rejected(tmp_path):
    entry = _entry()
    del entry["snomed"]["property_type"]
    path = _write(tmp_path, [entry])
    with pytest.raises(CatalogueError, match="snomed.property_type is missing"):
        load_catalogue(path)


def test_color_out_of_range_rejected(tmp_path):
    path = _write(tmp_path, [_entry(color=[0, 256, 0])])
    with pytest.raises(CatalogueError, match="color must be"):
        load_catalogue(path)


def test_unknown_field_rejected(tmp_path):
    path = _write(tmp_path, [_entry(colour=[1, 2, 3])])
    with pytest.raises(CatalogueError, match="unknown field"):
        load_catalogue(path)


def test_bad_laterality_rejected(tmp_path):
    snomed = _entry()["snomed"] | {"laterality": {"code": "51440002", "scheme": "SCT", "meaning": "Bilateral"}}
    path = _write(tmp_path, [_entry(snomed=snomed)])
    with pytest.raises(CatalogueError, match="laterality"):
        load_catalogue(path)


def test_ambiguous_synonym_rejected(tmp_path):
    liver = _entry(id=2, name="liver", synonyms=["spleen"])
    path = _write(tmp_path, [_entry(), liver])
    with pytest.raises(CatalogueError) as error:
        load_catalogue(path)
    message = str(error.value)
    assert str(path) in message
    assert "ambiguous" in message
    assert "'liver'" in message


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text('[{"id": 1,}]', encoding="utf-8")
    with pytest.raises(CatalogueError, match="invalid JSON at line 1"):
        load_catalogue(path)


def test_top_level_must_be_list(tmp_path):
    path = _write(tmp_path, {"tasks": []})
    with pytest.raises(CatalogueError, match="JSON list"):
        load_catalogue(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_catalogue(tmp_path / "absent.json")


def test_in_memory_duplicate_id_rejected():
    task = Task(id=1, name="a", synonyms=(), category="organ", tubular=False, color=(0, 0, 0),
                snomed={}, laterality=None)
    other = Task(id=1, name="b", synonyms=(), category="organ", tubular=False, color=(0, 0, 0),
                 snomed={}, laterality=None)
    with pytest.raises(CatalogueError, match="duplicate id 1"):
        TaskCatalogue([task, other])
