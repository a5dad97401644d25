"""DICOM input and output shared by every front: series reading with UID repair, and DICOM SEG."""

from gcis.dicom.seg import (
    AlgorithmInfo,
    build_segmentation,
    coded_concept,
    order_sources_by_slice,
    read_segmentation,
    segment_description,
    slice_indices,
    task_of_segment,
)
from gcis.dicom.series import derive_blank_study_and_series_uids, fill_sop_uids_from_file_meta, read_series

__all__ = [
    "AlgorithmInfo",
    "build_segmentation",
    "coded_concept",
    "derive_blank_study_and_series_uids",
    "fill_sop_uids_from_file_meta",
    "order_sources_by_slice",
    "read_segmentation",
    "read_series",
    "segment_description",
    "slice_indices",
    "task_of_segment",
]
