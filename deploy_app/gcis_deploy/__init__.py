"""Operators and helpers of the gCIS MONAI Deploy application (DICOM CT in, DICOM SEG out)."""
