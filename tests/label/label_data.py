"""Real CT data of the MONAI Label tests, as paths relative to the shared data folder."""

# Image id (file stem in the studies folder) -> CT. All are real CT; the two report crops are
# small on the tiny model's 6 mm grid, which keeps inference short.
STUDIES = {
    "example_ct_sm": "totalsegmentator/example_ct_sm.nii.gz",
    "aorta_ct": "totalsegmentator/aorta_report_models/ct_cropped.nii.gz",
    "pulmonary_ct": "totalsegmentator/pulmonary_report_models/ct_cropped.nii.gz",
}
# TotalSegmentator label of example_ct_sm (same grid); its values are catalogue ids except 64.
EXAMPLE_LABEL = "totalsegmentator/example_seg.nii.gz"
# The 20-slice CT series (JPEG 2000 lossless) and its TotalSegmentator label, stored with a flipped y axis.
SERIES = "totalsegmentator/example_ct_dicom"
SERIES_LABEL = "totalsegmentator/example_seg_dicom.nii.gz"
