#!/usr/bin/env bash
# Trains the quickstart's base model with peft4j's own trainer and measures it.
#
#   samples/quickstart/make-base-model.sh [--work DIR] [--threads N] [--no-lora] [--install]
#
# 1. writes the untrained architecture (peft4j synth --write-untrained-model),
# 2. generates synthetic images: train and held-out test sets of the lines metal, metal-dim, fabric,
# 3. trains every weight on metal (peft4j train --method full) and exports a package with labels,
# 4. measures the base model on each line's held-out images (peft4j predict),
# 5. trains a LoRA adapter on metal-dim and on fabric for about a minute each and measures it,
# 6. writes the numbers to WORK/results.md; --install copies the model and its labels to
#    cli/src/main/resources/io/peft4j/cli/quickstart/, where 'peft4j quickstart' finds them.
#
# Everything is seeded: the images are the same on every machine, and so is the training up to
# floating-point differences between ONNX Runtime builds and CPUs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
peft4j="$root/peft4j"
work="$root/runs/make-base-model"
threads=2
lora=1
install=0

while [ $# -gt 0 ]; do
  case "$1" in
    --work) work="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --no-lora) lora=0; shift ;;
    --install) install=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-base-model.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

# the recipe
seed=42           # weights, images, shuffling
per_class=600     # training images per class (5 classes)
test_per_class=200
size=32
epochs=20
batch=32
lr=3e-3
lora_steps=450    # about a minute on 2 cores
lora_lr=1e-2
lora_rank=8

rm -rf "$work"
mkdir -p "$work/data"
log() { printf '\n== %s\n' "$*"; }

log "untrained architecture"
"$peft4j" synth --write-untrained-model "$work/untrained.onnx" --seed "$seed"

log "synthetic images"
for line in metal metal-dim fabric; do
  "$peft4j" synth --line "$line" --split train --per-class "$per_class" --size "$size" --seed "$seed" \
    --threads "$threads" --out "$work/data/$line-train"
  "$peft4j" synth --line "$line" --split test --per-class "$test_per_class" --size "$size" --seed "$seed" \
    --threads "$threads" --out "$work/data/$line-test"
done

log "base model: every weight, on metal"
start=$SECONDS
"$peft4j" train --base "$work/untrained.onnx" --method full --data "$work/data/metal-train" \
  --val "$work/data/metal-test" --epochs "$epochs" --batch "$batch" --lr "$lr" --schedule cosine --warmup-steps 20 \
  --seed "$seed" --threads "$threads" --no-progress --out "$work/base" --export "$work/base-pkg" | tee "$work/base.log"
base_seconds=$((SECONDS - start))

# accuracy of a package on a folder of class folders: the top label of each image against its folder
accuracy() {
  local pkg="$1" dir="$2"
  "$peft4j" predict --model "$pkg" --top 1 --threads "$threads" "$dir"/*/*.png \
    | awk '/^[^ ]/ { n = split($0, p, "/"); truth = p[n - 1]; next }
           { total++; if ($2 == truth) right++ }
           END { if (total == 0) exit 1; printf "%.4f", right / total }'
}

declare -A base_acc lora_acc lora_time
log "base model on each line's held-out images"
for line in metal metal-dim fabric; do
  base_acc[$line]="$(accuracy "$work/base-pkg" "$work/data/$line-test")"
  echo "$line: ${base_acc[$line]}"
done

if [ "$lora" = 1 ]; then
  for line in metal-dim fabric; do
    log "LoRA adapter for $line ($lora_steps steps)"
    start=$SECONDS
    "$peft4j" train --base "$work/base/model.onnx" --method lora --targets all --rank "$lora_rank" \
      --alpha $((2 * lora_rank)) --data "$work/data/$line-train" --val "$work/data/$line-test" --steps "$lora_steps" \
      --batch "$batch" --lr "$lora_lr" --schedule cosine --warmup-steps 20 --seed "$seed" --threads "$threads" \
      --no-progress --out "$work/lora-$line" | tee "$work/lora-$line.log"
    lora_time[$line]=$((SECONDS - start))
    lora_acc[$line]="$(sed -n 's/^validation ([0-9]* examples): accuracy \([0-9.]*\),.*/\1/p' "$work/lora-$line.log")"
  done
fi

params="$(sed -n 's/^trainable parameters: [0-9,]* of \([0-9,]*\) .*/\1/p' "$work/base.log")"
{
  echo "# The quickstart's base model"
  echo
  echo "Made by \`samples/quickstart/make-base-model.sh\` on $(date -u +%Y-%m-%d), $(nproc) CPUs, --threads $threads."
  echo "Base: $params parameters, $(stat -c %s "$work/base/model.onnx") bytes, trained on metal in ${base_seconds} s"
  echo "($epochs epochs of $((5 * per_class)) images, batch $batch, AdamW lr $lr, cosine)."
  echo
  echo "| line | base model | LoRA adapter (r=$lora_rank, $lora_steps steps) | adapter training time |"
  echo "|---|---|---|---|"
  for line in metal metal-dim fabric; do
    echo "| $line | ${base_acc[$line]} | ${lora_acc[$line]:--} | ${lora_time[$line]:+${lora_time[$line]} s} |"
  done
  echo
  echo "Accuracy on $((5 * test_per_class)) held-out test images per line (peft4j synth --split test, seed $seed)."
} > "$work/results.md"
log "results ($work/results.md)"
cat "$work/results.md"

if [ "$install" = 1 ]; then
  dest="$root/cli/src/main/resources/io/peft4j/cli/quickstart"
  mkdir -p "$dest"
  cp "$work/base/model.onnx" "$dest/base.onnx"
  find "$work/data/metal-train" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort > "$dest/labels.txt"
  log "installed $dest/base.onnx and labels.txt"
fi
