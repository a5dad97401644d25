"""Write the datalist of the shipped weights: OpenKBP train-pats plus the TotalSegmentator example abdomen.

OpenKBP validation-pats never enter it: they are kept for the reported scores. Ten
train-pats cases are held out as the validation section that picks the best epoch.

Usage: python bundle/scripts/make_training_datalist.py --data ../shared/data -o runs/shipped_datalist.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from gcis.data.datalist import build_datalist

OPENKBP_LABELS = {
    1: "Brainstem", 2: "SpinalCord", 3: "RightParotid", 4: "LeftParotid", 5: "Esophagus", 6: "Larynx", 7: "Mandible",
}
HELD_OUT_CASES = 10
# The abdomen example is one volume among 161; weight 16 makes it about one draw in eleven.
ABDOMEN_WEIGHT = 16.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="data folder that contains openkbp/ and totalsegmentator/")
    parser.add_argument("-o", "--output", required=True, help="datalist JSON to write")
    parser.add_argument("--exclude-task", action="append", default=[], help="leave this task's labels out (few-shot experiments)")
    parser.add_argument(
        "--only-task", action="append", default=[],
        help="keep only this task's labels, and the cases that have it (single-organ baseline)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    data = Path(args.data)

    openkbp = build_datalist(
        data / "openkbp" / "train-pats", data / "openkbp" / "train-pats", OPENKBP_LABELS,
        image_glob="*_ct.nii.gz", label_glob="*_oar_label.nii.gz",
    )
    order = np.random.default_rng(0).permutation(len(openkbp))
    validation = [openkbp[i] for i in sorted(order[:HELD_OUT_CASES])]
    training = [openkbp[i] for i in sorted(order[HELD_OUT_CASES:])]

    names = json.loads((data / "totalsegmentator" / "example_seg_labels_total_v2.json").read_text())
    # The catalogue has portal_vein and splenic_vein apart; TotalSegmentator's merged class 64 has no task.
    names.pop("64", None)
    abdomen = build_datalist(
        data / "totalsegmentator", data / "totalsegmentator", {int(k): v for k, v in names.items()},
        image_glob="example_ct_sm.nii.gz", label_glob="example_seg.nii.gz",
    )
    for item in abdomen:
        item["weight"] = ABDOMEN_WEIGHT
    training += abdomen

    def kept(name: str) -> bool:
        return name not in args.exclude_task and (not args.only_task or name in args.only_task)

    for item in training + validation:
        item["labels"] = {v: n for v, n in item["labels"].items() if kept(n)}
        item["annotated"] = [n for n in item["annotated"] if kept(n)]
    if args.only_task:
        training = [item for item in training if item["annotated"]]
        validation = [item for item in validation if item["annotated"]]

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"training": training, "validation": validation}, indent=1))
    print(f"wrote {args.output}: {len(training)} training cases, {len(validation)} validation cases")


if __name__ == "__main__":
    main()
