#!/usr/bin/env bash
# The small SSR end to end on one CPU core (issue 10; docs/RESULTS_SMALL.md):
#   synthetic data (training and held-out scenes from disjoint seeds) -> geometry/vision pretraining
#   -> stage 1 (SSR-2D, pretrained ViT) -> stage 2 (SSR-3D, fresh 3D branch, frozen small aggregator).
# With --with-baselines it also trains the comparisons (blind, SSR-3D on a random frozen aggregator),
# evaluates every model on the held-out questions with `ssr eval run` and writes the results table.
#
#   bash scripts/train_small.sh [RUN_DIR] [--with-baselines] [--no-warmup] [--device cpu|cuda|npu]
#                               [--scale K] [--workers N] [--threads N]   (default RUN_DIR: runs/small)
#
# The language warm-up (warmup_small.yaml: prompt and answer text on grey frames, 600 steps) runs
#   before stage 1, and stage 1 and the blind baseline both start from it; --no-warmup skips it
#   (run 2 of docs/RESULTS_SMALL.md, with --scale 1 and stage 1 at 1,000 steps).
# --device: where stages 1/2, the baselines and the evaluations run (geometry pretraining and the data
#   engine stay on the CPU); --scale K: K times the optimiser steps of stage 1, stage 2 and blind (the
#   CPU recipe is K=1; docs/RESULTS_SMALL.md says why K~10 is the next step); --workers N: scenes
#   rendered in parallel; --threads N: torch threads per process (default 1, the shared 2-core machine).
# Wall times of every step go to RUN_DIR/wall_times.log; each step shows a progress bar.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=runs/small
BASELINES=0
WARMUP=1
DEVICE=cpu
SCALE=1
WORKERS=1
THREADS=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --with-baselines) BASELINES=1 ;;
    --no-warmup) WARMUP=0 ;;
    --device) DEVICE=${2:?--device needs cpu, cuda or npu}; shift ;;
    --scale) SCALE=${2:?--scale needs a positive integer}; shift ;;
    --workers) WORKERS=${2:?--workers needs a positive integer}; shift ;;
    --threads) THREADS=${2:?--threads needs a positive integer}; shift ;;
    -*) echo "train_small.sh: unknown option $1" >&2; exit 1 ;;
    *) RUN="$1" ;;
  esac
  shift
done
for value in "$SCALE" "$WORKERS" "$THREADS"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "train_small.sh: --scale, --workers and --threads take positive integers, got $value" >&2; exit 1; }
done
case "$DEVICE" in cpu|cuda|npu) ;; *) echo "train_small.sh: --device must be cpu, cuda or npu, got $DEVICE" >&2; exit 1 ;; esac
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
PY=${PYTHON:-python}
mkdir -p "$RUN"
WALL="$RUN/wall_times.log"

step() {  # step NAME CMD...: run CMD unless RUN/.done/NAME exists, log its wall time
  local name=$1; shift
  mkdir -p "$RUN/.done"
  if [[ -e "$RUN/.done/$name" ]]; then echo "== $name: done before, skipped"; return; fi
  echo "== $name"
  local start=$SECONDS
  "$@"
  echo "$name $((SECONDS - start)) s" | tee -a "$WALL"
  touch "$RUN/.done/$name"
}

# -- data: 200 training scenes (seed 0) and 30 held-out scenes (seed 1000), 64 frames of 168x112
step synth_train $PY -m ssr_core.commands data synth --out "$RUN/scenes_train" --scenes 200 --seed 0 --frames 64 \
  --width 168 --height 112 --segmentation --workers "$WORKERS"
step synth_heldout $PY -m ssr_core.commands data synth --out "$RUN/scenes_heldout" --scenes 30 --seed 1000 --frames 64 \
  --width 168 --height 112 --segmentation --workers "$WORKERS"
step build_train $PY -m ssr_core.commands data build --scenes "$RUN/scenes_train" --out "$RUN/samples_train" --frames 8 \
  --windows-per-scene 4 --val-fraction 0 --weights cogmap=1,grounding=1,vsibench=2 --seed 0
step build_heldout $PY -m ssr_core.commands data build --scenes "$RUN/scenes_heldout" --out "$RUN/samples_heldout" --frames 8 \
  --windows-per-scene 4 --val-fraction 0 --seed 1
step eval_subset $PY -m training.report_small subset --data "$RUN/samples_heldout/train.jsonl" \
  --out "$RUN/samples_heldout/eval.jsonl"

# -- geometry/vision pretraining (ViT: segmentation + depth; aggregator: depth + relative pose)
step geometry $PY -m training.geometry --train-scenes "$RUN/scenes_train" --max-train-scenes 128 \
  --heldout-scenes "$RUN/scenes_heldout" --out "$RUN/geometry" --vit-steps 3000 --aggregator-steps 400 \
  --probe-steps 150 --batch-size 4
step base_random $PY -m training.small --samples "$RUN/samples_train/train.jsonl" --out "$RUN/base_random"
step base $PY -m training.small --tokenizer "$RUN/base_random" --visual "$RUN/geometry/vit/visual.safetensors" \
  --out "$RUN/base"

# -- stage 1 (SSR-2D) and stage 2 (SSR-3D)
DATA=(--set "data.train=$RUN/samples_train/train.jsonl" --set "train.device=$DEVICE")
S1=$((2000 * SCALE)); S2=$((400 * SCALE)); BLIND=$((S1 + S2))  # the YAMLs' 2,000 / 400 steps; blind = both
STAGE1_BASE=$RUN/base BLIND_BASE=$RUN/base_random  # the blind model's ViT sees only grey frames
if [[ $WARMUP == 1 ]]; then
  step warmup $PY -m training.train --config training/configs/warmup_small.yaml "${DATA[@]}" \
    --set "output_dir=$RUN/warmup" --set "model.base=$RUN/base"
  STAGE1_BASE=$RUN/warmup/final BLIND_BASE=$RUN/warmup/final
fi
step stage1 $PY -m training.train --config training/configs/stage1_small.yaml "${DATA[@]}" \
  --set "output_dir=$RUN/stage1" --set "model.base=$STAGE1_BASE" --set "train.max_steps=$S1"
step stage2 $PY -m training.train --config training/configs/stage2_small.yaml "${DATA[@]}" \
  --set "output_dir=$RUN/stage2" --set "model.init_from=$RUN/stage1/final" --set "train.max_steps=$S2" \
  --set "model.vggt=$RUN/geometry/aggregator/model.safetensors" \
  --set "model.vggt_config=$RUN/geometry/aggregator/vggt_config.json"
echo "shipped-model recipe done: $RUN/stage2/final (wall times in $WALL)"
[[ $BASELINES == 1 ]] || exit 0

# -- comparisons: SSR-3D on the random frozen aggregator; blind = stage 1 on grey frames for as many
#    optimiser steps as stages 1 + 2 together (a blind model gains nothing from the 3D branch)
step stage2_random_aggregator $PY -m training.train --config training/configs/stage2_small.yaml "${DATA[@]}" \
  --set "output_dir=$RUN/stage2_random_aggregator" --set "model.init_from=$RUN/stage1/final" --set "train.max_steps=$S2" \
  --set "model.vggt=$RUN/geometry/random_aggregator/model.safetensors" \
  --set "model.vggt_config=$RUN/geometry/random_aggregator/vggt_config.json"
step blind $PY -m training.train --config training/configs/stage1_small.yaml "${DATA[@]}" \
  --set "output_dir=$RUN/blind" --set "model.base=$BLIND_BASE" --set data.blind=true \
  --set "train.max_steps=$BLIND"

# 1,400 new tokens cover the longest held-out detect-all answer (1,301 tokens); a looping answer stops there
EVAL=(--data "$RUN/samples_heldout/eval.jsonl" --device "$DEVICE" --num-frames 8 --max-new-tokens 1400)
mkdir -p "$RUN/predictions"
step eval_ssr2d $PY -m ssr_core.commands eval run --checkpoint "$RUN/stage1/final" "${EVAL[@]}" \
  --out "$RUN/predictions/ssr2d.jsonl"
step eval_ssr3d $PY -m ssr_core.commands eval run --checkpoint "$RUN/stage2/final" "${EVAL[@]}" \
  --out "$RUN/predictions/ssr3d.jsonl"
step eval_ssr3d_random_aggregator $PY -m ssr_core.commands eval run \
  --checkpoint "$RUN/stage2_random_aggregator/final" "${EVAL[@]}" --out "$RUN/predictions/ssr3d_random_aggregator.jsonl"
step eval_blind $PY -m ssr_core.commands eval run --checkpoint "$RUN/blind/final" "${EVAL[@]}" --blind \
  --out "$RUN/predictions/blind.jsonl"
$PY -m training.report_small table --data "$RUN/samples_heldout/eval.jsonl" --out "$RUN/results" \
  --model "blind=$RUN/predictions/blind.jsonl" --model "SSR-2D=$RUN/predictions/ssr2d.jsonl" \
  --model "SSR-3D=$RUN/predictions/ssr3d.jsonl" \
  --model "SSR-3D random agg.=$RUN/predictions/ssr3d_random_aggregator.jsonl" \
  --curve "stage 1=$RUN/stage1/train_log.jsonl" --curve "stage 2=$RUN/stage2/train_log.jsonl@$S1" \
  --curve "stage 2 random agg.=$RUN/stage2_random_aggregator/train_log.jsonl@$S1" --curve "blind=$RUN/blind/train_log.jsonl" \
  --compare "SSR-3D:blind" --compare "SSR-3D:frequency" --compare "SSR-3D:SSR-2D" --compare "SSR-3D:SSR-3D random agg."
