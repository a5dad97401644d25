#!/usr/bin/env bash
# Train the shipped weights (bundle/models/model.pt) from the shared data, on CPU or GPU.
#
# Stages 2 to 7 of seven (see bundle/docs/training.md). Stage 2 trains a network of preset
# "medium" whose Swin encoder starts from the stage-1 weights (bundle/models/stage1_small.pt,
# preset "small"). Stage 3 fine-tunes all of stage 2's weights on a new learning-rate
# schedule, in bfloat16. Stage 4 fine-tunes stage 3's best weights with the routers frozen,
# so that no task leaves the sub-pathways it was trained on. Stage 5 trains stage 4's best
# weights further, routes still frozen, on a longer schedule in bfloat16. Stage 6 trains stage 5's
# best weights with more crops on the esophagus and the larynx, the two weakest organs. Stage 7
# widens stage 6's decoder and trains on. Rerunning
# continues each stage from its last.pt in runs/, or from the committed copies in
# bundle/models/resume/, so training can span several sessions. A finished stage returns
# at once.
# NOTE: stage 2 ran steps 1-720 with --epochs 9 and then resumed with
# --epochs 13, so its learning rate rose again at step 721. A run from scratch follows
# one 13-epoch cosine schedule instead.
# Usage: bash bundle/scripts/train_shipped_weights.sh [DATA_DIR] [extra gcis train options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-../shared/data}"
shift || true

# glibc maps the 30+ MB activations of 64^3 crops afresh on every step. With transparent huge
# pages, the kernel faults them in 2 MiB at a time instead of 4 KiB (see bundle/docs/training.md).
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"

python bundle/scripts/make_training_datalist.py --data "$data" -o runs/shipped_datalist.json

# A fresh clone continues from the committed training state instead of starting over.
restore_committed_state() {
    local run="$1" committed="$2"
    if [ ! -f "$run/last.pt" ] && [ -f "$committed/last.pt" ]; then
        mkdir -p "$run"
        cp "$committed/last.pt" "$committed/history.json" "$run/"
        # The next stage starts from this stage's best weights.
        if [ -f "$committed/best.pt" ]; then
            cp "$committed/best.pt" "$run/"
        fi
    fi
}

# Settings that all stages share.
common=(
    --datalist runs/shipped_datalist.json
    --preset medium
    --batch-size 2
    --max-tasks 3
    --routing-noise-until 0
    --resume
)

# Stage 2.
restore_committed_state runs/shipped bundle/models/resume
gcis train "${common[@]}" \
    -o runs/shipped \
    --init-encoder bundle/models/stage1_small.pt \
    --epochs 13 \
    --learning-rate 1e-3 \
    --validate-every 3 \
    "$@"

# Stage 3.
restore_committed_state runs/shipped_stage3 bundle/models/resume/stage3
gcis train "${common[@]}" \
    -o runs/shipped_stage3 \
    --init-weights runs/shipped/last.pt \
    --epochs 24 \
    --learning-rate 5e-4 \
    --validate-every 2 \
    --precision bf16 \
    "$@"

# Stage 4. It ran in float32 because its machine, an AMD EPYC (Zen 3), has no bfloat16 instructions.
# It was stopped by hand at step 720 of a 10-epoch schedule, so --epochs 9 marks it finished there.
restore_committed_state runs/shipped_stage4 bundle/models/resume/stage4
gcis train "${common[@]}" \
    -o runs/shipped_stage4 \
    --init-weights runs/shipped_stage3/best.pt \
    --epochs 9 \
    --learning-rate 3e-4 \
    --validate-every 2 \
    --freeze-routes \
    "$@"

# Stage 5.
restore_committed_state runs/shipped_stage5 bundle/models/resume/stage5
gcis train "${common[@]}" \
    -o runs/shipped_stage5 \
    --init-weights runs/shipped_stage4/best.pt \
    --epochs 26 \
    --learning-rate 3e-4 \
    --validate-every 2 \
    --precision bf16 \
    --freeze-routes \
    "$@"

# Stage 6. Organ-centred crops centre twice as often on the two weakest organs, and each crop
# always trains the organ it is centred on.
favour_weak_organs=(
    --task-weight esophagus=2
    --task-weight larynx=2
    --centre-task-first
)
restore_committed_state runs/shipped_stage6 bundle/models/resume/stage6
gcis train "${common[@]}" \
    -o runs/shipped_stage6 \
    --init-weights runs/shipped_stage5/best.pt \
    --epochs 24 \
    --learning-rate 2e-4 \
    --validate-every 2 \
    --precision bf16 \
    --freeze-routes \
    "${favour_weak_organs[@]}" \
    "$@"

# Stage 7. It widens the decoder of stage 6's best weights without changing their logits: AP
# modules 1 to 5 get twice their channels, and the full-resolution modules keep 16. Training
# then goes on with stage 6's crop settings (favour_weak_organs).
# NOTE: stage 7's last.pt (128 MB) is not committed, so on a fresh clone this stage runs again.
restore_committed_state runs/shipped_stage7 bundle/models/resume/stage7
gcis train "${common[@]}" \
    -o runs/shipped_stage7 \
    --init-weights runs/shipped_stage6/best.pt \
    --widen-decoder 96 64 48 32 32 16 16 \
    --epochs 28 \
    --learning-rate 3e-4 \
    --validate-every 3 \
    --precision bf16 \
    --freeze-routes \
    "${favour_weak_organs[@]}" \
    --export bundle/models/model.pt \
    "$@"
