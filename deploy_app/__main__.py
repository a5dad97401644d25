"""Entry point: ``python deploy_app -i DICOM_FOLDER -o OUTPUT_FOLDER [-m WEIGHTS] [--tasks ...]``."""

import sys

from app import main

if __name__ == "__main__":
    sys.exit(main())
