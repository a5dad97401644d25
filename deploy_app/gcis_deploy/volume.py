"""The SDK's in-memory CT volume: decoding errors that name the file, and conversion to SimpleITK."""

from __future__ import annotations

import logging

import numpy as np
import SimpleITK as sitk
from monai.deploy.core.domain.image import Image
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

from gcis_deploy.errors import InputError
from gcis_deploy.series_checks import file_name

logger = logging.getLogger(__name__)


class CTSeriesToVolumeOperator(DICOMSeriesToVolumeOperator):
    """DICOMSeriesToVolumeOperator with LPS metadata and a decoding error that names the file.

    Named input:
        study_selected_series_list: list of StudySelectedSeries; the first series is converted.
    Named output:
        image: Image with a (slices, rows, columns) array in Hounsfield units and the series' metadata.
    """

    def __init__(self, fragment, *args, **kwargs):
        kwargs.setdefault("affine_lps_to_ras", False)
        super().__init__(fragment, *args, **kwargs)

    def generate_voxel_data(self, series):
        try:
            return super().generate_voxel_data(series)
        except Exception as error:  # the SDK wraps every decoding failure in RuntimeError or re-raises it as is
            raise InputError(self._decoding_failure(series, error)) from error

    @staticmethod
    def _decoding_failure(series, error: Exception) -> str:
        """Return a message that names the first instance whose pixel data cannot be decoded."""
        for sop in series.get_sop_instances():
            dataset = sop.get_native_sop_instance()
            try:
                dataset.pixel_array
            except Exception as cause:  # pydicom and its plugins raise many exception types on bad pixel data
                syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown")
                name = getattr(syntax, "name", syntax)
                return (
                    f"series {series.SeriesInstanceUID}: the pixel data of {file_name(dataset)} ({name}) could not "
                    f"be decoded: {type(cause).__name__}: {cause}"
                )
        return f"series {series.SeriesInstanceUID}: conversion to a volume failed: {type(error).__name__}: {error}"


def volume_to_sitk(image: Image) -> sitk.Image:
    """Return the SDK volume as a SimpleITK image in patient (LPS) coordinates.

    The array is (slices, rows, columns), the index order of SimpleITK arrays. DICOM Pixel
    Spacing is (spacing between rows, spacing between columns), kept by the SDK as
    ``row_pixel_spacing`` and ``col_pixel_spacing``, so the column index (x) steps by
    ``col_pixel_spacing`` along the row direction cosine. The slice axis and origin come
    from the SDK's ``dicom_affine_transform``: its third column is the step between
    consecutive sorted slices and its fourth the position of the first one.
    """
    metadata = image.metadata()
    array = np.asarray(image.asnumpy())
    if array.ndim != 3:
        raise InputError(f"the volume of series {metadata.get('SeriesInstanceUID')} has shape {array.shape}; "
                         "a 3D (slices, rows, columns) array is needed")
    if array.dtype == np.float64:
        array = array.astype(np.float32)

    affine = np.asarray(metadata["dicom_affine_transform"], dtype=float)
    row_cosine = np.asarray(metadata["row_direction_cosine"], dtype=float)
    column_cosine = np.asarray(metadata["col_direction_cosine"], dtype=float)
    slice_step = affine[:3, 2]
    slice_spacing = float(np.linalg.norm(slice_step))

    sitk_image = sitk.GetImageFromArray(array)
    sitk_image.SetSpacing((float(metadata["col_pixel_spacing"]), float(metadata["row_pixel_spacing"]), slice_spacing))
    direction = np.column_stack([row_cosine, column_cosine, slice_step / slice_spacing])
    sitk_image.SetDirection(direction.flatten().tolist())
    sitk_image.SetOrigin(affine[:3, 3].tolist())
    return sitk_image
