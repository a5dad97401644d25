"""Write bundle/configs/metadata.json for the shipped weights, with label names from the task catalogue.

Usage: python bundle/scripts/write_metadata.py --weights bundle/models/model.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gcis.bundle_metadata import build_metadata, write_metadata
from gcis.checkpoint import load_checkpoint

BUNDLE = Path(__file__).resolve().parents[1]
CHANGELOG = {
    "0.8.0": "stage 7: stage 6's best weights with the decoder widened to twice the channels below full resolution, trained for 1,440 more steps",
    "0.7.0": "stage 6: stage 5's best weights trained for 1,280 more steps, with more crops on the esophagus and larynx",
    "0.6.0": "stage 5: stage 4's best weights trained for 2,080 more steps in bfloat16, routes still frozen",
    "0.5.0": "stage 4: stage 3's best weights fine-tuned for 720 more steps with the routers frozen, so no task changes route",
    "0.4.0": "stage 3: all of stage 2's weights fine-tuned for 1,920 more steps in bfloat16 on a new learning-rate schedule",
    "0.3.0": "stage 2 resumed to step 1040; one-piece structures keep only their largest connected piece",
    "0.2.0": "medium preset (16-channel full-resolution decoder) trained with batch Dice from the stage-1 Swin encoder",
    "0.1.0": "first bundle: small preset trained on OpenKBP train-pats and the TotalSegmentator example abdomen",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(BUNDLE / "models" / "model.pt"), help="checkpoint the bundle ships")
    parser.add_argument("-o", "--output", default=str(BUNDLE / "configs" / "metadata.json"), help="metadata file to write")
    args = parser.parse_args()

    checkpoint, _ = load_checkpoint(args.weights)
    training = checkpoint.metadata.get("training", {})
    channels = ", ".join(str(c) for c in checkpoint.model.config.decoder_channels)
    summary = (
        f"Trained with the {checkpoint.metadata.get('preset', '?')} preset, decoder channels {channels}; "
        f"the last stage ran {training.get('steps', 0)} steps (all stages: docs/training.md)."
    )
    metadata = build_metadata(checkpoint, CHANGELOG, summary)
    write_metadata(args.output, metadata)
    print(f"wrote {args.output}: {len(metadata['network_data_format']['outputs']['pred']['channel_def']) - 1} labels")
    print(json.dumps(metadata["network_data_format"]["inputs"]["image"], indent=1))


if __name__ == "__main__":
    main()
