"""The SDK volume as SimpleITK image: same voxels and geometry as SimpleITK's own DICOM reader."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from deploy_test_helpers import corrupt_codestream, select
from gcis.data.geometry import read_volume
from gcis_deploy.errors import InputError
from gcis_deploy.volume import CTSeriesToVolumeOperator, volume_to_sitk
from monai.deploy.core import Fragment


def sdk_volume(folder):
    """Load, select and convert a series as the app does; return the SDK Image."""
    return CTSeriesToVolumeOperator(Fragment(), name="volume").convert_to_image(select(folder))


def assert_same_image(actual: sitk.Image, expected: sitk.Image) -> None:
    assert actual.GetSize() == expected.GetSize()
    np.testing.assert_allclose(actual.GetSpacing(), expected.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(actual.GetOrigin(), expected.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(actual.GetDirection(), expected.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(actual), sitk.GetArrayViewFromImage(expected))


def test_example_series_matches_simpleitk(example_series):
    assert_same_image(volume_to_sitk(sdk_volume(example_series)), read_volume(example_series))


def set_all(**attributes):
    def edit(index, dataset):
        for keyword, value in attributes.items():
            setattr(dataset, keyword, value)
        return dataset

    return edit


@pytest.mark.parametrize(
    "case, attributes",
    [
        ("non-square pixels", {"PixelSpacing": [0.8, 1.1]}),
        ("rows and columns flipped", {"ImageOrientationPatient": [-1, 0, 0, 0, -1, 0]}),
        ("slices stacked feet to head", {"ImageOrientationPatient": [1, 0, 0, 0, -1, 0]}),
        ("oblique axial", {"ImageOrientationPatient": [0.996195, 0.087156, 0, -0.087156, 0.996195, 0]}),
    ],
)
def test_geometry_matches_simpleitk(case, attributes, small_series, edited_copy):
    folder = edited_copy(small_series, set_all(**attributes))

    converted = volume_to_sitk(sdk_volume(folder))

    assert_same_image(converted, read_volume(folder))


def test_non_square_pixel_spacing_order(small_series, edited_copy):
    folder = edited_copy(small_series, set_all(PixelSpacing=[0.8, 1.1]))

    converted = volume_to_sitk(sdk_volume(folder))

    # DICOM PixelSpacing is (between rows, between columns); SimpleITK spacing is (x, y, z).
    assert converted.GetSpacing()[:2] == pytest.approx((1.1, 0.8))


def test_corrupt_pixel_data_names_file(example_series, edited_copy):
    folder = edited_copy(example_series, corrupt_codestream)

    with pytest.raises(InputError) as raised:
        sdk_volume(folder)

    message = str(raised.value)
    assert "slice_006.dcm" in message
    assert "JPEG 2000" in message
    assert "could not be decoded" in message
