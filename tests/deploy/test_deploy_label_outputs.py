"""NIfTI and STL outputs of a known label map."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from gcis.catalogue import load_catalogue
from gcis.inference.segmenter import SegmentationResult
from gcis_deploy.label_outputs import read_stl, surface_mesh, write_meshes, write_nifti


def box_result(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> SegmentationResult:
    """A 40 x 30 x 20 label map (x, y, z) with a 10 x 8 x 6 voxel box of liver (5) on a 1.5 x 2 x 3 mm grid."""
    array = np.zeros((20, 30, 40), dtype=np.uint16)
    array[5:11, 10:18, 12:22] = 5
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 2.0, 3.0))
    image.SetOrigin((-10.0, 20.0, 100.0))
    image.SetDirection(direction)
    liver = load_catalogue().get("liver")
    return SegmentationResult(label_image=image, labels={5: "liver"}, tasks=[liver])


def signed_volume(vertices: np.ndarray, triangles: np.ndarray) -> float:
    """Return the enclosed volume, positive when the triangles are wound counter-clockwise seen from outside."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


BOX_VOLUME_MM3 = 10 * 1.5 * 8 * 2.0 * 6 * 3.0


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1),
                                       (1, 0, 0, 0, 1, 0, 0, 0, -1)])
def test_mesh_closed_outward_in_patient_mm(direction):
    result = box_result(direction)
    mask = sitk.GetArrayViewFromImage(result.label_image) == 5

    vertices, triangles = surface_mesh(mask, result.label_image)

    volume = signed_volume(vertices, triangles)
    # The 0.5 iso-surface cuts the box's edge voxels, so it encloses less than the voxel volume.
    assert 0.6 * BOX_VOLUME_MM3 < volume < BOX_VOLUME_MM3
    corners = [result.label_image.TransformContinuousIndexToPhysicalPoint(index)
               for index in ((12, 10, 5), (21, 17, 10))]
    low, high = np.min(corners, axis=0), np.max(corners, axis=0)
    assert np.all(vertices.min(axis=0) >= low - 3.0)
    assert np.all(vertices.max(axis=0) <= high + 3.0)
    np.testing.assert_allclose(vertices.mean(axis=0), (low + high) / 2, atol=0.5)


def test_stl_file_round_trip(tmp_path):
    result = box_result()

    paths = write_meshes(result, tmp_path)

    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["stl/liver.stl"]
    header = paths[0].read_bytes()[:84]
    assert header[:4] == b"gCIS"
    count = struct.unpack("<I", header[80:84])[0]
    assert paths[0].stat().st_size == 84 + 50 * count
    normals, corners = read_stl(paths[0])
    assert len(corners) == count
    mask = sitk.GetArrayViewFromImage(result.label_image) == 5
    vertices, triangles = surface_mesh(mask, result.label_image)
    np.testing.assert_allclose(corners, vertices[triangles], atol=1e-4)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)


def test_nifti_and_label_table(tmp_path):
    result = box_result()

    nifti, table = write_nifti(result, tmp_path)

    written = sitk.ReadImage(str(nifti))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(written), sitk.GetArrayViewFromImage(result.label_image))
    np.testing.assert_allclose(written.GetOrigin(), result.label_image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetSpacing(), result.label_image.GetSpacing(), atol=1e-6)
    assert json.loads(table.read_text()) == {"5": "liver"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json", "labels.nii.gz"]
