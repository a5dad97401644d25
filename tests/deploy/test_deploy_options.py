"""Command line, app config and weights search of the Deploy app."""

from __future__ import annotations

import pytest
from gcis_deploy.errors import ConfigurationError, WeightsNotFoundError
from gcis_deploy.options import AppSettings, parse_command_line, resolve_weights


@pytest.fixture()
def config_file(tmp_path, monkeypatch):
    """Return write(text): an app config file that HOLOSCAN_CONFIG_PATH points at."""
    path = tmp_path / "app.yaml"
    monkeypatch.setenv("HOLOSCAN_CONFIG_PATH", str(path))

    def write(text: str):
        path.write_text(text)
        return path

    return write


def test_command_line_overrides_config(config_file):
    config_file("gcis:\n  tasks: [spleen]\n  segmentation_type: binary\n  stl: true\n")

    settings, sdk_argv = parse_command_line(["deploy_app", "-i", "in", "-o", "out", "--tasks", "liver", "aorta"])

    assert settings.tasks == ["liver", "aorta"]
    assert settings.segmentation_type == "BINARY"
    assert settings.stl is True
    assert settings.nifti is False
    assert sdk_argv == ["deploy_app", "--input", "in", "--output", "out"]


def test_defaults_without_config(config_file):
    settings, sdk_argv = parse_command_line(["deploy_app"])

    assert settings == AppSettings()
    assert settings.omit_empty_frames is False
    assert settings.segmentation_type == "LABELMAP"
    assert sdk_argv == ["deploy_app"]


def test_invalid_config_value_rejected(config_file):
    config_file("gcis:\n  segmentation_type: fractional\n")

    with pytest.raises(ConfigurationError, match="segmentation type 'FRACTIONAL' is invalid"):
        parse_command_line(["deploy_app"])


def test_weights_file_taken_as_is(tmp_path):
    weights = tmp_path / "any_name.pt"
    weights.write_bytes(b"")

    assert resolve_weights(weights) == weights


@pytest.mark.parametrize("relative", ["models/model.pt", "model.pt", "nested/folder/only.pt"])
def test_weights_found_in_folder(tmp_path, relative):
    weights = tmp_path / relative
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"")

    assert resolve_weights(tmp_path) == weights


def test_several_weights_files_rejected(tmp_path):
    for name in ("a.pt", "b.pt"):
        (tmp_path / name).write_bytes(b"")

    with pytest.raises(WeightsNotFoundError, match="contains 2 .pt files"):
        resolve_weights(tmp_path)


def test_missing_weights_rejected(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no gCIS weights found"):
        resolve_weights(tmp_path / "absent.pt")
