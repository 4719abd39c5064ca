#!/usr/bin/env bash
# Defect detection on NEU-DET: one base model, one small LoRA adapter per production line.
#
#   samples/defect-detection/run.sh [--data DIR] [--out DIR] [--quick] [--per-line K] [--threads N] [--seed S]
#
# --data      a folder of class folders (default: ../shared/data/neu-det beside the checkout)
# --out       the work folder, created empty (default: runs/defect-detection-<UTC time>)
# --quick     small sizes (the CI test): fewer images and steps, about two minutes on 2 cores
# --per-line  classes per production line (default 3)
# --threads   ONNX Runtime threads (default 2)
# --seed      seeds the image split, the weights and the training (default 42)
# PEFT4J      (environment) the peft4j command to run (default: the checkout's ./peft4j)
#
# The sorted classes are cut into production lines of K classes each: line-a is the first K, and
# so on. A base model is trained (every weight, peft4j train --method full) on line-a alone; every
# other line gets a LoRA adapter on that base, which reuses the base's K outputs for the line's own
# K defect classes. The adapters go into one side package (peft4j export --mode side: chosen per
# request), line-b's also into a merged package, and peft4j predict classifies each line's
# held-out images with the base model, each adapter and the merged package. Numbers go to
# OUT/results.md and OUT/results.tsv. Only peft4j commands and coreutils are used.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
peft4j="${PEFT4J:-$root/peft4j}"
data="$root/../shared/data/neu-det"
out=""
quick=0
per_line=3
threads=2
seed=42

fail() { echo "run.sh: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --data|--out|--per-line|--threads|--seed) [ $# -ge 2 ] || fail "$1 needs a value" ;;&
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --per-line) per_line="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

# the recipe
if [ "$quick" = 1 ]; then
  train_per_class=60; test_per_class=30; base_epochs=12; lora_steps=150; mode="quick"
else
  train_per_class=200; test_per_class=100; base_epochs=20; lora_steps=400; mode="full"
fi
batch=32
base_lr=3e-3
lora_lr=1e-2
lora_rank=8

[[ "$per_line" =~ ^[0-9]+$ ]] && [ "$per_line" -ge 2 ] || fail "--per-line must be 2 or more, got $per_line"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || fail "--threads must be a positive number, got $threads"
[[ "$seed" =~ ^[0-9]+$ ]] || fail "--seed must be a number, got $seed"
[ -d "$data" ] || fail "no data folder $data (give --data DIR: a folder of class folders, e.g. NEU-DET)"
data="$(cd "$data" && pwd)"
mapfile -t classes < <(find "$data" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%f\n' | LC_ALL=C sort)
lines=$(( ${#classes[@]} / per_line ))
[ "$lines" -ge 2 ] || fail "$data has ${#classes[@]} class folders; two production lines of $per_line classes need $((2 * per_line))"
line_names=()
for ((l = 0; l < lines; l++)); do line_names+=("line-$(printf "\\x$(printf %x $((97 + l)))")"); done

if [ -z "$out" ]; then out="$root/runs/defect-detection-$(date -u +%Y%m%d-%H%M%S)"; fi
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then fail "$out exists and is not empty"; fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log() { printf '\n== %s\n' "$*"; }
start_all=$SECONDS

# 1. data: each line's classes, a seeded split into training and held-out images per class
log "data: ${#classes[@]} classes from $data, $lines lines of $per_line, $train_per_class training + $test_per_class held-out images per class"
random_source() { yes "peft4j-defect-detection-$seed" | head -c 1048576; }
for ((l = 0; l < lines; l++)); do
  line="${line_names[$l]}"
  for ((k = 0; k < per_line; k++)); do
    c="${classes[$((l * per_line + k))]}"
    mapfile -t files < <(find "$data/$c" -maxdepth 1 -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.bmp' \) \
      ! -name '.*' -printf '%f\n' | LC_ALL=C sort | shuf --random-source=<(random_source))
    need=$((train_per_class + test_per_class))
    [ "${#files[@]}" -ge "$need" ] || fail "class folder $data/$c has ${#files[@]} images; this run needs $need"
    mkdir -p "$out/data/$line/train/$c" "$out/data/$line/test/$c"
    for f in "${files[@]:0:$train_per_class}"; do cp "$data/$c/$f" "$out/data/$line/train/$c/"; done
    for f in "${files[@]:$train_per_class:$test_per_class}"; do cp "$data/$c/$f" "$out/data/$line/test/$c/"; done
  done
  echo "$line: ${classes[*]:$((l * per_line)):$per_line}"
done

# 2. the base model: the quickstart's small CNN (1x32x32 grayscale), every weight trained on line-a
log "base model: every weight, on line-a (${classes[*]:0:$per_line})"
"$peft4j" synth --write-untrained-model "$out/untrained.onnx" --seed "$seed"
t=$SECONDS
"$peft4j" train --base "$out/untrained.onnx" --method full --head-classes "$per_line" \
  --data "$out/data/line-a/train" --val "$out/data/line-a/test" --epochs "$base_epochs" --batch "$batch" --lr "$base_lr" \
  --schedule cosine --warmup-steps 20 --augment --seed "$seed" --threads "$threads" --no-progress \
  --out "$out/base" | tee "$out/base.log"
base_seconds=$((SECONDS - t))

# 3. one LoRA adapter per other line, on every layer (the head too: it re-reads the K outputs)
declare -A train_seconds
mkdir -p "$out/adapters"
for ((l = 1; l < lines; l++)); do
  line="${line_names[$l]}"
  log "LoRA adapter for $line ($lora_steps steps)"
  t=$SECONDS
  "$peft4j" train --base "$out/base/model.onnx" --method lora --targets '.*' --rank "$lora_rank" --alpha $((2 * lora_rank)) \
    --data "$out/data/$line/train" --val "$out/data/$line/test" --steps "$lora_steps" --batch "$batch" --lr "$lora_lr" \
    --schedule cosine --warmup-steps 20 --augment --seed "$seed" --threads "$threads" --no-progress \
    --out "$out/adapters/$line" | tee "$out/adapters/$line.log"
  train_seconds[$line]=$((SECONDS - t))
done

# 4. packages. Output k of the side package means the k-th class of whichever line is asking, so its
#    labels name one class per line, joined by '|'; the merged package is line-b's alone.
log "export: side package (every adapter) and merged package (line-b)"
: > "$out/side-labels.txt"
for ((k = 0; k < per_line; k++)); do
  label=""
  for ((l = 0; l < lines; l++)); do label+="${label:+|}${classes[$((l * per_line + k))]}"; done
  echo "$label" >> "$out/side-labels.txt"
done
printf '%s\n' "${classes[@]:$per_line:$per_line}" > "$out/line-b-labels.txt"
adapter_args=()
for ((l = 1; l < lines; l++)); do adapter_args+=(--adapter "${line_names[$l]}=$out/adapters/${line_names[$l]}"); done
t=$SECONDS
"$peft4j" export --base "$out/base/model.onnx" "${adapter_args[@]}" --mode side --labels "$out/side-labels.txt" \
  --image-size 32x32 --channels 1 --mean 0.5 --std 0.5 --out "$out/packages/side"
"$peft4j" export --base "$out/base/model.onnx" --adapter "line-b=$out/adapters/line-b" --mode merged \
  --labels "$out/line-b-labels.txt" --image-size 32x32 --channels 1 --mean 0.5 --std 0.5 --out "$out/packages/merged"
export_seconds=$((SECONDS - t))

# 5. predict: every line's held-out images with the base model, each adapter, and the merged package.
#    The top label of an image is right when its part for the line (or, merged, the label) is the folder.
# accuracy PKG LINE_INDEX DIR [--adapter NAME]: prints "correct total"
accuracy() {
  local pkg="$1" part="$2" dir="$3"; shift 3
  "$peft4j" predict --model "$pkg" "$@" --top 1 --threads "$threads" "$dir"/*/* \
    | awk -v part="$part" '/^[^ ]/ { sub(/ \(adapter .*\)$/, ""); n = split($0, p, "/"); truth = p[n - 1]; next }
        { split($2, names, "|"); guess = (part in names) ? names[part] : $2; total++; if (guess == truth) right++ }
        END { if (total == 0) exit 1; printf "%d %d", right, total }'
}
log "predict: held-out images of every line"
printf 'line\tpackage\tadapter\tcorrect\ttotal\taccuracy\n' > "$out/results.tsv"
record() {
  local line="$1" pkg="$2" adapter="$3" counts="$4"
  local right="${counts% *}" total="${counts#* }"
  local acc; acc="$(awk -v r="$right" -v t="$total" 'BEGIN { printf "%.4f", r / t }')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$line" "$pkg" "$adapter" "$right" "$total" "$acc" >> "$out/results.tsv"
  printf '%-8s %-7s %-8s %s / %s = %s\n' "$line" "$pkg" "$adapter" "$right" "$total" "$acc"
}
t=$SECONDS
for ((l = 0; l < lines; l++)); do
  line="${line_names[$l]}"
  record "$line" side none "$(accuracy "$out/packages/side" $((l + 1)) "$out/data/$line/test")"
  for ((a = 1; a < lines; a++)); do
    record "$line" side "${line_names[$a]}" \
      "$(accuracy "$out/packages/side" $((l + 1)) "$out/data/$line/test" --adapter "${line_names[$a]}")"
  done
done
record line-b merged line-b "$(accuracy "$out/packages/merged" 1 "$out/data/line-b/test")"
predict_seconds=$((SECONDS - t))

# 6. the report
acc_of() { awk -F'\t' -v l="$1" -v p="$2" -v a="$3" '$1 == l && $2 == p && $3 == a { print $6 }' "$out/results.tsv"; }
size_of() { du -sb "$1" | cut -f1; }
kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }
model_bytes="$(stat -c %s "$out/base/model.onnx")"
{
  echo "# Defect detection: one base model, one LoRA adapter per production line"
  echo
  echo "Made by \`samples/defect-detection/run.sh\`$([ "$quick" = 1 ] && echo " --quick") on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, --threads $threads, seed $seed."
  echo "Data: $data; $train_per_class training and $test_per_class held-out images per class ($mode size)."
  echo
  for ((l = 0; l < lines; l++)); do
    echo "- ${line_names[$l]}: ${classes[*]:$((l * per_line)):$per_line}$([ "$l" = 0 ] && echo " (the base model's line)")"
  done
  echo
  printf '| line | held-out images | base model |'
  for ((a = 1; a < lines; a++)); do printf ' %s adapter |' "${line_names[$a]}"; done
  printf ' merged (line-b) |\n|---|---:|---:|'
  for ((a = 1; a < lines; a++)); do printf -- '---:|'; done
  printf -- '---:|\n'
  for ((l = 0; l < lines; l++)); do
    line="${line_names[$l]}"
    printf '| %s | %d | %s |' "$line" $((per_line * test_per_class)) "$(acc_of "$line" side none)"
    for ((a = 1; a < lines; a++)); do printf ' %s |' "$(acc_of "$line" side "${line_names[$a]}")"; done
    if [ "$line" = line-b ]; then printf ' %s |\n' "$(acc_of line-b merged line-b)"; else printf ' – |\n'; fi
  done
  echo
  echo "Chance is $(awk -v k="$per_line" 'BEGIN { printf "%.3f", 1 / k }') per line."
  echo
  echo "Sizes: base model $(kib "$model_bytes"); side package $(kib "$(size_of "$out/packages/side")"), merged package $(kib "$(size_of "$out/packages/merged")")."
  for ((a = 1; a < lines; a++)); do
    line="${line_names[$a]}"
    bytes=$(( $(stat -c %s "$out/adapters/$line/adapter_model.safetensors") + $(stat -c %s "$out/adapters/$line/adapter_config.json") ))
    echo "- $line adapter: $(kib "$bytes") (config and safetensors, $(awk -v a="$bytes" -v m="$model_bytes" 'BEGIN { printf "%.1f", 100 * a / m }') % of the base model), trained in ${train_seconds[$line]} s ($lora_steps steps of batch $batch)"
  done
  echo
  echo "Time: base model ${base_seconds} s ($base_epochs epochs of $((per_line * train_per_class)) images), export ${export_seconds} s, predict ${predict_seconds} s; all $((SECONDS - start_all)) s."
} > "$out/results.md"
log "results ($out/results.md)"
cat "$out/results.md"
