"""Optional outputs besides the SEG: the label map as NIfTI and one STL surface mesh per structure."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from gcis.inference.outputs import write_result
from gcis.inference.segmenter import SegmentationResult
from monai.deploy.core import Fragment, Operator, OperatorSpec
from skimage.measure import marching_cubes

from gcis_deploy.files import atomic_path

logger = logging.getLogger(__name__)

# Written by gcis.inference.outputs.write_result, the same files as `gcis segment` writes.
NIFTI_FILE_NAME = "labels.nii.gz"
LABEL_TABLE_FILE_NAME = "labels.json"
STL_FOLDER_NAME = "stl"


def write_nifti(result: SegmentationResult, output_folder: Path) -> list[Path]:
    """Write the label map (values are catalogue ids) as NIfTI and a JSON table {id: task name} of its labels."""
    output_folder.mkdir(parents=True, exist_ok=True)
    write_result(result, output_folder)
    return [output_folder / NIFTI_FILE_NAME, output_folder / LABEL_TABLE_FILE_NAME]


def surface_mesh(mask: np.ndarray, image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Return (vertices in patient LPS mm, triangles) of the 0.5 iso-surface of a (z, y, x) mask on `image`'s grid.

    The mask is padded by one voxel so that structures touching the volume border get closed
    surfaces. Triangles are wound counter-clockwise seen from outside.
    """
    padded = np.pad(mask.astype(np.uint8), 1)
    vertices_zyx, triangles, _, _ = marching_cubes(padded, level=0.5)
    index_xyz = vertices_zyx[:, ::-1] - 1.0

    spacing = np.asarray(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    matrix = direction * spacing  # column j is the physical step of index axis j
    vertices = index_xyz @ matrix.T + np.asarray(image.GetOrigin())

    # With the vertex axes reordered to (x, y, z), skimage's triangles are wound counter-clockwise seen from
    # outside (scikit-image 0.26, checked by the signed-volume test). A direction matrix with a negative
    # determinant mirrors the mesh, which turns the winding inside out, so it is reversed then.
    if np.linalg.det(matrix) < 0:
        triangles = triangles[:, ::-1]
    return vertices, triangles


def write_stl(path: Path, vertices: np.ndarray, triangles: np.ndarray, name: str) -> None:
    """Write a binary STL file (80-byte header, triangle count, then normal and three vertices per triangle)."""
    corners = vertices[triangles].astype(np.float32)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)

    records = np.zeros(len(triangles), dtype=[("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
    records["normal"] = normals
    records["corners"] = corners
    header = f"gCIS {name}, patient LPS coordinates in mm".encode("ascii", "replace")[:80].ljust(80, b" ")
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(header)
            stream.write(struct.pack("<I", len(triangles)))
            stream.write(records.tobytes())


def write_meshes(result: SegmentationResult, output_folder: Path) -> list[Path]:
    """Write one STL mesh per label found, named after its catalogue task, in the `stl` sub-folder."""
    labels = sitk.GetArrayViewFromImage(result.label_image)
    paths = []
    for label, name in sorted(result.labels.items()):
        vertices, triangles = surface_mesh(labels == label, result.label_image)
        path = output_folder / STL_FOLDER_NAME / f"{name}.stl"
        write_stl(path, vertices, triangles, name)
        logger.info("wrote %s (%d triangles)", path, len(triangles))
        paths.append(path)
    return paths


class LabelMapFileWriterOperator(Operator):
    """Write the label map as NIfTI and, or, one STL mesh per structure found.

    Named input:
        segmentation: gcis.inference.SegmentationResult.

    File output (in the output folder):
        ``labels.nii.gz`` and ``labels.json`` when `nifti` is set;
        ``stl/<task name>.stl`` when `stl` is set. Each file is written under a temporary
        name and renamed when complete.
    """

    def __init__(self, fragment: Fragment, *args, output_folder: Path, nifti: bool = False, stl: bool = False,
                 **kwargs):
        self.output_folder = Path(output_folder)
        self.nifti = nifti
        self.stl = stl
        self.input_name_segmentation = "segmentation"
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input(self.input_name_segmentation)

    def compute(self, op_input, op_output, context):
        result = op_input.receive(self.input_name_segmentation)
        if self.nifti:
            for path in write_nifti(result, self.output_folder):
                logger.info("wrote %s", path)
        if self.stl:
            write_meshes(result, self.output_folder)


def read_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (normals (N, 3), corners (N, 3, 3)) of a binary STL file written by :func:`write_stl`."""
    data = Path(path).read_bytes()
    (count,) = struct.unpack("<I", data[80:84])
    records = np.frombuffer(data, offset=84, count=count,
                            dtype=[("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
    return records["normal"].astype(float), records["corners"].astype(float)
