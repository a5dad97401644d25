#!/usr/bin/env bash
# Few-shot adaptation experiment: hold one OpenKBP organ out of training, then adapt to it.
#
# 1. Train a network of the shipped preset on OpenKBP train-pats and the abdomen example
#    with the held-out organ's labels removed (its voxels count as unannotated), from the
#    same stage-1 Swin encoder as the shipped weights: --train-steps steps on a cosine
#    schedule, stopped after --minutes if the steps take longer.
# 2. Adapt that network to the organ with `gcis adapt` on 1, 5 and 20 train-pats cases,
#    the same number of steps each time, and score each adapted network on the
#    validation-pats cases that have the organ (Dice on the model grid).
# Usage: bash bundle/scripts/few_shot_adaptation.sh [DATA_DIR] [--minutes M] [--train-steps T] [--steps S]
#   --steps sets the fine-tuning steps of each `gcis adapt` run.
# NOTE: the held-out organ is the larynx. Stage 1's encoder, which step 1 starts from, saw
# larynx labels in training, but stage 1 scored larynx Dice 0.000.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-../shared/data}"
shift || true
organ=larynx
value=6
name=Larynx
minutes=12
train_steps=200
steps=100
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --train-steps) train_steps="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        *) echo "invalid option $1; use --minutes M, --train-steps T or --steps S" >&2; exit 2 ;;
    esac
done
out=runs/fewshot
mkdir -p "$out"

python bundle/scripts/make_training_datalist.py --data "$data" --exclude-task "$organ" -o "$out/without_$organ.json"
gcis train \
    --datalist "$out/without_$organ.json" \
    -o "$out/without_$organ" \
    --preset medium \
    --init-encoder bundle/models/stage1_small.pt \
    --epochs 1 \
    --steps-per-epoch "$train_steps" \
    --batch-size 2 \
    --max-tasks 3 \
    --learning-rate 1e-3 \
    --routing-noise-until 0 \
    --max-minutes "$minutes" \
    --export "$out/without_$organ.pt"

python bundle/scripts/make_training_datalist.py --data "$data" --only-task "$organ" -o "$out/$organ-train.json"
gcis datalist --images "$data/openkbp/validation-pats" --label-glob "*_oar_label.nii.gz" \
    --label-names "{\"$value\":\"$name\"}" --validation-fraction 1 -o "$out/$organ-validation.json"

for cases in 1 5 20; do
    python - "$out" "$organ" "$cases" <<'PY'
import json
import sys
from pathlib import Path

out, organ, cases = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
training = json.loads((out / f"{organ}-train.json").read_text())["training"][:cases]
validation = json.loads((out / f"{organ}-validation.json").read_text())["validation"]
(out / f"{organ}-{cases}.json").write_text(json.dumps({"training": training, "validation": validation}, indent=1))
PY
    gcis adapt --prompt "$organ" --datalist "$out/$organ-$cases.json" --weights "$out/without_$organ.pt" \
        --steps "$steps" -o "$out/$organ-$cases"
done
