"""CT input: reading volumes and DICOM series, CT checks, model-grid resampling, datalists."""
