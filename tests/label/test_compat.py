"""The MONAI Label 0.8.5 / pydicom 3 import clash, and the gcis-label command's defaults."""

from __future__ import annotations

import subprocess
import sys

import pydicom
import pytest
from label_servers import limit_child

from gcis.label_server import DEFAULT_HOST, UVICORN_APP, build_main, is_loopback


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, preexec_fn=limit_child
    )


@pytest.mark.skipif(pydicom.__version_info__[0] != "3", reason="the clash exists only with pydicom 3")
def test_pydicom_seg_fails_without_support():
    result = run_python("import pydicom_seg")
    assert result.returncode != 0
    assert "pydicom._storage_sopclass_uids" in result.stderr


def test_pydicom_seg_reads_seg_with_support(shared_data):
    seg = shared_data / "dcmqi" / "segmentations" / "liver.dcm"
    result = run_python(
        "from gcis.compat.pydicom3 import install_pydicom_seg_support\n"
        "install_pydicom_seg_support()\n"
        "assert not install_pydicom_seg_support()\n"
        "import pydicom, pydicom_seg\n"
        f"result = pydicom_seg.MultiClassReader().read(pydicom.dcmread({str(seg)!r}))\n"
        "print(result.data.shape, sorted(result.segment_infos))\n"
    )
    assert result.returncode == 0, result.stderr
    assert "(3, 512, 512) [1]" in result.stdout


def test_monailabel_datastore_imports_with_support():
    # monailabel.datastore.utils.convert is the module that imports pydicom-seg.
    result = run_python(
        "from gcis.compat.pydicom3 import install_pydicom_seg_support\n"
        "install_pydicom_seg_support()\n"
        "import monailabel.datastore.utils.convert\n"
        "import monailabel.datastore.dicom\n"
        "print('imported')\n"
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_start_server_defaults_to_loopback_and_gcis_app():
    parser = build_main().args_parser()
    args = parser.parse_args(["start_server", "--app", "apps/gcis", "--studies", "studies"])
    assert args.host == DEFAULT_HOST == "127.0.0.1"
    assert args.uvicorn_app == UVICORN_APP == "gcis.label_server:app"

    args = parser.parse_args(["start_server", "--app", "a", "--studies", "s", "--host", "0.0.0.0", "--port", "9000"])
    assert args.host == "0.0.0.0"
    assert args.port == 9000


def test_only_start_server_is_offered():
    parser = build_main().args_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["datasets", "--download"])


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("192.168.1.10", False), ("example.org", False)],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
