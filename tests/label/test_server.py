"""The gCIS MONAI Label app served by `gcis-label` over a local studies folder of real CTs.

One server runs for the whole module, with the network blocked for the server and its
subprocesses (label_servers.NETWORK_GUARD). The tests run in file order and build on each
other: a label is saved, training uses it, and a restarted server must still have it.
Weights are the tiny random checkpoint, so the tests check plumbing, geometry and names,
not segmentation quality.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest
import requests
import SimpleITK as sitk
from label_data import EXAMPLE_LABEL, STUDIES
from label_servers import LabelServer
from requests_toolbelt.multipart.decoder import MultipartDecoder

from gcis.catalogue import load_catalogue

TRAINED = {"liver": 5, "spleen": 1, "kidney_left": 3, "kidney_right": 2, "aorta": 52}
TRAIN_TIMEOUT_S = 600
REQUEST_TIMEOUT_S = 600

saved = {}  # state handed from one test to the next


@pytest.fixture(scope="module")
def server(tmp_path_factory, studies_dir, tiny_checkpoint_file):
    work = tmp_path_factory.mktemp("label_server")
    label_server = LabelServer(work, str(studies_dir), tiny_checkpoint_file, work / "model")
    label_server.start()
    yield label_server
    label_server.stop()


def infer(server, model: str, image: str, params: dict | None = None) -> tuple[dict, sitk.Image, requests.Response]:
    """POST /infer/<model> with output=all; return (result params, label image, response)."""
    response = requests.post(
        server.url(f"/infer/{model}"), params={"image": image, "output": "all"},
        data={"params": json.dumps(params or {})}, timeout=REQUEST_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    parts = MultipartDecoder.from_response(response).parts
    result = json.loads(parts[0].text)
    suffix = ".nrrd" if (params or {}).get("result_extension") == ".nrrd" else ".nii.gz"
    label_file = server.work / f"result-{model}-{image}-{time.monotonic_ns()}{suffix}"
    label_file.write_bytes(parts[1].content)
    return result, sitk.ReadImage(str(label_file)), response


def assert_same_grid(label: sitk.Image, image: sitk.Image):
    assert label.GetSize() == image.GetSize()
    assert np.allclose(label.GetSpacing(), image.GetSpacing(), atol=1e-4)
    assert np.allclose(label.GetOrigin(), image.GetOrigin(), atol=1e-3)
    assert np.allclose(label.GetDirection(), image.GetDirection(), atol=1e-5)


def test_server_listens_on_loopback_only(server):
    listening = [c for c in psutil.Process(server.process.pid).net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_info_lists_models_labels_and_tasks(server):
    info = requests.get(server.url("/info/"), timeout=60).json()
    catalogue = load_catalogue()

    assert set(info["models"]) == {"gcis", "gcis_prompt"}
    for model in info["models"].values():
        assert model["type"] == "segmentation"
        assert model["labels"] == TRAINED
        assert all(catalogue.get(name).id == value for name, value in model["labels"].items())
    assert "prompt" in info["models"]["gcis_prompt"]["config"]
    assert set(info["labels"]) == set(TRAINED)
    assert set(info["trainers"]) == {"gcis"}
    assert {"random", "first", "gcis_uncertainty"} <= set(info["strategies"])
    assert set(info["scoring"]) == {"gcis_uncertainty"}
    assert info["datastore"]["total"] == len(STUDIES)


def test_infer_all_structures(server, studies_dir):
    result, label, _ = infer(server, "gcis", "example_ct_sm")

    assert result["label_names"] == TRAINED
    assert set(result["found"]) <= set(TRAINED)
    assert_same_grid(label, sitk.ReadImage(str(studies_dir / "example_ct_sm.nii.gz")))
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, *TRAINED.values()}


def test_infer_free_text_prompt(server, studies_dir):
    # OHIF requests NRRD in uint8; "right renal" and "hepatic organ" match by text embedding.
    params = {"prompt": "right renal; hepatic organ", "result_extension": ".nrrd", "result_dtype": "uint8"}
    result, label, _ = infer(server, "gcis_prompt", "pulmonary_ct", params)

    assert result["label_names"] == {"kidney_right": 2, "liver": 5}
    assert [(p["prompt"], p["task"], p["method"]) for p in result["prompts"]] == [
        ("right renal", "kidney_right", "embedding"),
        ("hepatic organ", "liver", "embedding"),
    ]
    assert label.GetPixelID() == sitk.sitkUInt8
    assert_same_grid(label, sitk.ReadImage(str(studies_dir / "pulmonary_ct.nii.gz")))
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 2, 5}


@pytest.mark.parametrize(
    ("model", "image", "params", "status", "message"),
    [
        ("gcis_prompt", "pulmonary_ct", {"prompt": "toaster"}, 400, "unknown prompt 'toaster'"),
        ("gcis_prompt", "pulmonary_ct", {"prompt": "gallbladder"}, 400, "not among the 5 tasks"),
        ("gcis_prompt", "pulmonary_ct", {}, 400, "no prompt given"),
        ("gcis", "pulmonary_ct", {"result_extension": ".exe"}, 400, "result_extension"),
        ("gcis", "no_such_image", {}, 404, "not found in the datastore"),
        ("gcis", "/etc/hostname", {}, 400, "is a path"),
        ("gcis", "../../etc/passwd", {}, 400, "is a path"),
        ("no_such_model", "pulmonary_ct", {}, 404, "model 'no_such_model' not found"),
    ],
)
def test_infer_rejects_bad_requests(server, model, image, params, status, message):
    response = requests.post(
        server.url(f"/infer/{model}"), params={"image": image, "output": "json"},
        data={"params": json.dumps(params)}, timeout=REQUEST_TIMEOUT_S,
    )
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_concurrent_infer_on_two_images(server, studies_dir):
    images = ["aorta_ct", "pulmonary_ct"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(lambda image: infer(server, "gcis", image), images))
    for image, (result, label, _) in zip(images, concurrent):
        assert result["label_names"] == TRAINED
        assert_same_grid(label, sitk.ReadImage(str(studies_dir / f"{image}.nii.gz")))

    # Inference is deterministic, so each concurrent result must equal a request made alone.
    for image, (_, label, _) in zip(images, concurrent):
        _, alone, _ = infer(server, "gcis", image)
        assert np.array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(alone)), image


def test_save_partial_label(server, shared_data, tmp_path):
    # A Slicer-style upload: segment values 1 and 2, named in label_info, plus a structure checked as absent.
    source = sitk.ReadImage(str(shared_data / EXAMPLE_LABEL))
    values = sitk.GetArrayFromImage(source)
    upload = np.zeros_like(values)
    upload[values == 5] = 1
    upload[values == 1] = 2
    label = sitk.GetImageFromArray(upload)
    label.CopyInformation(source)
    sitk.WriteImage(label, str(tmp_path / "label.nii.gz"))
    params = {"label_info": [{"name": "Liver", "idx": 1}, {"name": "spleen", "idx": 2}], "annotated": ["gallbladder"]}

    response = requests.put(
        server.url("/datastore/label"), params={"image": "example_ct_sm", "tag": "final"},
        data={"params": json.dumps(params)}, files={"label": ("label.nii.gz", (tmp_path / "label.nii.gz").read_bytes())},
        timeout=REQUEST_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text

    stored = requests.get(server.url("/datastore/"), params={"output": "all"}, timeout=60).json()
    info = stored["objects"]["example_ct_sm"]["labels"]["final"]["info"]
    assert info["annotated"] == ["spleen", "gallbladder", "liver"]
    assert info["label_names"] == {"spleen": 1, "gallbladder": 4, "liver": 5}

    download = requests.get(server.url("/datastore/label"), params={"label": "example_ct_sm", "tag": "final"}, timeout=60)
    assert download.status_code == 200
    (tmp_path / "stored.nii.gz").write_bytes(download.content)
    stored_values = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "stored.nii.gz")))
    expected = np.where(values == 5, 5, np.where(values == 1, 1, 0))
    assert np.array_equal(stored_values, expected)
    saved["label"] = stored_values


def test_save_label_rejects_bad_requests(server, studies_dir, shared_data, tmp_path):
    good = (shared_data / EXAMPLE_LABEL).read_bytes()
    studies_parent = sorted(p.name for p in studies_dir.parent.iterdir())
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / EXAMPLE_LABEL)))
    cases = [
        ("malformed file", {"image": "example_ct_sm"}, b"not an image", {}, 400, "could not be read"),
        ("other image's grid", {"image": "aorta_ct"}, good, {}, 400, "does not match the image grid"),
        ("value 64 is no task id", {"image": "example_ct_sm"}, good, {}, 400, "[64]"),
        ("unknown segment name", {"image": "example_ct_sm"}, good,
         {"label_info": [{"name": "flux capacitor", "idx": 5}]}, 400, "not in the task catalogue"),
        ("unknown image", {"image": "no_such_image"}, good, {}, 404, "not found in the datastore"),
        ("tag with a path", {"image": "example_ct_sm", "tag": "../../outside"}, good, {}, 400, "label tag"),
    ]
    assert 64 in values
    for name, query, content, params, status, message in cases:
        response = requests.put(
            server.url("/datastore/label"), params={"tag": "final", **query}, data={"params": json.dumps(params)},
            files={"label": ("label.nii.gz", content)}, timeout=REQUEST_TIMEOUT_S,
        )
        assert response.status_code == status, f"{name}: {response.text}"
        assert message in response.json()["detail"], name

    response = requests.put(
        server.url("/datastore/image"), params={"image": "../../outside"},
        files={"file": ("ct.nii.gz", (studies_dir / "aorta_ct.nii.gz").read_bytes())}, timeout=REQUEST_TIMEOUT_S,
    )
    assert response.status_code == 400, response.text
    assert "image id" in response.json()["detail"]

    assert sorted(p.name for p in studies_dir.parent.iterdir()) == studies_parent
    assert not (studies_dir / "labels" / "outside").exists()
    assert np.array_equal(
        saved["label"], sitk.GetArrayFromImage(sitk.ReadImage(str(studies_dir / "labels" / "final" / "example_ct_sm.nii.gz")))
    )


def test_train_fine_tunes_on_saved_label(server):
    params = {"max_epochs": 1, "steps_per_epoch": 2, "train_batch_size": 1}
    response = requests.post(server.url("/train/gcis"), json=params, timeout=60)
    assert response.status_code == 200, response.text

    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        task = requests.get(server.url("/train/"), timeout=60).json()
        if task["status"] not in ("SUBMITTED", "RUNNING"):
            break
        time.sleep(3)
    assert task["status"] == "DONE", "\n".join(task.get("details", []))

    summary = requests.get(server.url("/info/"), timeout=60).json()["train_stats"]["gcis"]
    assert summary["train_cases"] == ["example_ct_sm"]
    assert summary["val_cases"] == ["example_ct_sm"]
    assert set(summary["baseline_dice"]) == {"spleen", "gallbladder", "liver"}
    baseline = float(np.mean(list(summary["baseline_dice"].values())))
    assert summary["published"] is (summary["best_mean_dice"] >= baseline)
    published = server.model_dir / "gcis.pt"
    assert published.is_file() is summary["published"]
    saved["published"] = summary["published"]

    # The served weights now list gallbladder as trained only if the new weights were published.
    labels = requests.get(server.url("/info/"), timeout=60).json()["models"]["gcis"]["labels"]
    assert ("gallbladder" in labels) is summary["published"]


def test_uncertainty_scoring_and_strategies(server):
    response = requests.post(server.url("/scoring/gcis_uncertainty"), params={"run_sync": "true"}, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200, response.text
    scores = response.json()["scores"]
    assert set(scores) == {"aorta_ct", "pulmonary_ct"}  # the unlabelled images
    assert all(0.0 <= value <= 1.0 for value in scores.values())

    picked = requests.post(server.url("/activelearning/gcis_uncertainty"), json={}, timeout=60).json()
    assert picked["scored"] is True
    assert picked["id"] == max(scores, key=scores.get)
    assert picked["gcis_uncertainty"] == pytest.approx(scores[picked["id"]])

    first = requests.post(server.url("/activelearning/first"), json={}, timeout=60).json()
    assert first["id"] == "aorta_ct"
    random_pick = requests.post(server.url("/activelearning/random"), json={}, timeout=60).json()
    assert random_pick["id"] in scores

    missing = requests.post(server.url("/activelearning/no_such_strategy"), json={}, timeout=60)
    assert missing.status_code == 404
    assert "not found" in missing.json()["detail"]


def test_restart_keeps_saved_label(server, tmp_path):
    server.stop()
    server.start()

    stored = requests.get(server.url("/datastore/"), params={"output": "all"}, timeout=60).json()
    assert stored["objects"]["example_ct_sm"]["labels"]["final"]["info"]["annotated"] == ["spleen", "gallbladder", "liver"]
    download = requests.get(server.url("/datastore/label"), params={"label": "example_ct_sm", "tag": "final"}, timeout=60)
    assert download.status_code == 200
    (tmp_path / "after_restart.nii.gz").write_bytes(download.content)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "after_restart.nii.gz"))), saved["label"])

    info = requests.get(server.url("/info/"), timeout=60).json()
    assert info["train_stats"]["gcis"]["published"] is saved["published"]
    assert info["datastore"]["completed"] == 1


def test_server_never_reached_the_network(server, tmp_path):
    assert server.blocked_connections() == ""

    # The guard works in the server's environment: a lookup of an outside name fails and is recorded.
    probe_log = tmp_path / "probe.log"
    result = subprocess.run(
        [sys.executable, "-c", "import socket; socket.getaddrinfo('example.invalid', 80)"],
        env={**server.env, "GCIS_TEST_BLOCKED_LOG": str(probe_log)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "network blocked by the test guard" in result.stderr
    assert "getaddrinfo example.invalid" in probe_log.read_text()
