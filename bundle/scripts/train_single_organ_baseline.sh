#!/usr/bin/env bash
# Baseline for routing: the same network trained on one organ at a time. It tests whether one
# routed network for all tasks does as well as one network per task at the same cost.
#
# Each OpenKBP organ gets its own network of the shipped preset with one sub-pathway per
# AP module (so no routing), started from the same stage-1 Swin encoder as the shipped
# weights. Give each organ a seventh of the multi-task run's training minutes, so that
# the 7 networks together cost what the one routed network cost. Each network is then
# scored on the OpenKBP validation-pats with `gcis evaluate`.
# Usage: bash bundle/scripts/train_single_organ_baseline.sh DATA_DIR MINUTES_PER_ORGAN STEPS [ORGAN ...]
#   STEPS sets the cosine schedule; pick it so that the steps fill MINUTES_PER_ORGAN.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 3 ]; then
    echo "usage: $0 DATA_DIR MINUTES_PER_ORGAN STEPS [ORGAN ...]" >&2
    exit 2
fi
data="$1"
minutes="$2"
steps="$3"
shift 3
declare -A values=(
    [brainstem]=1 [spinal_cord]=2 [parotid_gland_right]=3 [parotid_gland_left]=4
    [esophagus]=5 [larynx]=6 [mandible]=7
)
declare -A names=(
    [brainstem]=Brainstem [spinal_cord]=SpinalCord [parotid_gland_right]=RightParotid
    [parotid_gland_left]=LeftParotid [esophagus]=Esophagus [larynx]=Larynx [mandible]=Mandible
)
organs=("$@")
if [ ${#organs[@]} -eq 0 ]; then organs=("${!values[@]}"); fi
out=runs/baseline
mkdir -p "$out"

for organ in "${organs[@]}"; do
    if [ -z "${values[$organ]:-}" ]; then
        echo "unknown organ $organ; choose from: ${!values[*]}" >&2
        exit 2
    fi
    python bundle/scripts/make_training_datalist.py --data "$data" --only-task "$organ" -o "$out/$organ/datalist.json"
    gcis train \
        --datalist "$out/$organ/datalist.json" \
        -o "$out/$organ" \
        --preset medium \
        --sub-pathways 1 \
        --init-encoder bundle/models/stage1_small.pt \
        --epochs 1 \
        --steps-per-epoch "$steps" \
        --batch-size 2 \
        --max-tasks 1 \
        --learning-rate 1e-3 \
        --routing-noise-until 0 \
        --max-minutes "$minutes" \
        --export "$out/$organ.pt"

    gcis datalist --images "$data/openkbp/validation-pats" --label-glob "*_oar_label.nii.gz" \
        --label-names "{\"${values[$organ]}\":\"${names[$organ]}\"}" \
        --validation-fraction 1 -o "$out/$organ/validation.json"
    # Scored without the largest-piece step, like the routed step-720 weights in bundle/docs/training.md.
    gcis evaluate --datalist "$out/$organ/validation.json" --weights "$out/$organ.pt" --overlap 0 --all-components \
        -o "$out/$organ/scores.csv"
done

# One summary row per organ, in the columns of `gcis evaluate`'s summary CSV.
python - "$out" <<'PY'
import csv
import sys
from pathlib import Path

out = Path(sys.argv[1])
rows = []
for summary in sorted(out.glob("*/scores-summary.csv")):
    with summary.open() as handle:
        rows += list(csv.DictReader(handle))
# Tubular organs add the clDice and topology columns, so take the union of all columns.
columns = list(dict.fromkeys(column for row in rows for column in row))
with (out / "baseline_scores-summary.csv").open("w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=columns)
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda row: row["task"]))
print(f"wrote {out / 'baseline_scores-summary.csv'} ({len(rows)} organs)")
PY
