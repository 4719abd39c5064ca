#!/usr/bin/env bash
# One runtime, several LoRA adapters on one base model, chosen per request or per batch row.
#
#   samples/multi-adapter-serving/run.sh [--quick] [--work DIR] [--threads N] [--port P] [--token T]
#
# With nothing but ./peft4j and curl (and sed / awk for glue):
#  1. writes the quickstart's base model (peft4j synth --write-base-model) and synthetic images of
#     the production lines metal-dim and fabric (peft4j synth),
#  2. trains a LoRA adapter per line, and a third one (fabric-v2, rank 4) that is registered later,
#  3. exports a side package and a multi package with the two line adapters, with labels and
#     image preprocessing, and copies fabric-v2 into the repository's bundles/ folder,
#  4. starts peft4j serve on 127.0.0.1 with a management token, and with curl: lists models and
#     adapters, runs one batch per adapter on the side package (parameters.adapter), the same rows
#     as one mixed batch on the multi package (parameters.adapters) and checks that each row equals
#     the per-request answer, registers fabric-v2 at run time (refused without the token; by path,
#     then replaced by an upload), classifies images with /classify, reads /metrics, removes
#     fabric-v2, and stops the server.
# Every response is also saved under WORK/responses/ (the CI test reads them).
# --quick: tiny sizes (the CI test's; about a minute of training). --work default: runs/multi-adapter-serving.
# --port default 0 (a free port). --token default: PEFT4J_TOKEN, else a random one.
# PEFT4J: the peft4j command to run (default: the repository's ./peft4j).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
peft4j="${PEFT4J:-$root/peft4j}"
work="$root/runs/multi-adapter-serving"
threads=2
port=0
quick=0
token="${PEFT4J_TOKEN:-}"

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --work) work="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --token) token="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
command -v curl >/dev/null 2>&1 || { echo "run.sh: curl is needed (apt-get install curl)" >&2; exit 2; }

# sizes: images per class for training and held-out testing, training steps and batch
if [ "$quick" = 1 ]; then
  per_class=60; test_per_class=4; steps=60; steps_v2=40; batch=16
else
  per_class=300; test_per_class=20; steps=300; steps_v2=200; batch=32
fi
seed=42
[ -n "$token" ] || token="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"

rm -rf "$work"
mkdir -p "$work/data" "$work/responses"
log() { printf '\n== %s\n' "$*"; }

log "base model and synthetic images"
"$peft4j" synth --write-base-model "$work/base.onnx"
for line in metal-dim fabric; do
  "$peft4j" synth --line "$line" --split train --per-class "$per_class" --seed "$seed" --threads "$threads" \
    --out "$work/data/$line-train"
  "$peft4j" synth --line "$line" --split test --per-class "$test_per_class" --seed "$seed" --threads "$threads" \
    --out "$work/data/$line-test"
done
# the class folders, sorted: the order of the model's outputs
find "$work/data/fabric-train" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort > "$work/labels.txt"

# train NAME LINE RANK STEPS SEED: a LoRA adapter on every layer of the base model
train() {
  "$peft4j" train --base "$work/base.onnx" --method lora --targets all --rank "$3" --alpha $((2 * $3)) \
    --data "$work/data/$2-train" --val "$work/data/$2-test" --steps "$4" --batch "$batch" --lr 1e-2 \
    --schedule cosine --warmup-steps 10 --seed "$5" --threads "$threads" --no-progress --out "$work/adapters/$1" \
    > "$work/train-$1.log"
  echo "$1: $(grep -E '^validation' "$work/train-$1.log" | tail -n 1)"
}
log "LoRA adapters: metal-dim, fabric (rank 8) and fabric-v2 (rank 4, registered at run time)"
train metal-dim metal-dim 8 "$steps" "$seed"
train fabric fabric 8 "$steps" "$seed"
train fabric-v2 fabric 4 "$steps_v2" 7

log "export: a side package and a multi package"
pre=(--labels "$work/labels.txt" --image-size 32 --channels 1 --mean 0.5 --std 0.5)
"$peft4j" export --base "$work/base.onnx" --adapter "metal-dim=$work/adapters/metal-dim" \
  --adapter "fabric=$work/adapters/fabric" --mode side "${pre[@]}" --out "$work/repo/side"
"$peft4j" export --base "$work/base.onnx" --adapter "metal-dim=$work/adapters/metal-dim" \
  --adapter "fabric=$work/adapters/fabric" --mode multi "${pre[@]}" --out "$work/repo/multi"
mkdir -p "$work/repo/bundles"
cp -r "$work/adapters/fabric-v2" "$work/repo/bundles/fabric-v2"
rm -rf "$work/repo/bundles/fabric-v2/checkpoints"

log "serve"
"$peft4j" serve --repo "$work/repo" --host 127.0.0.1 --port "$port" --token "$token" --threads "$threads" \
  > "$work/serve.log" 2>&1 &
server=$!
stop() {
  if kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
}
trap stop EXIT
url=""
for _ in $(seq 1 600); do
  url="$(sed -n 's/^peft4j: serving .* at \(http:[^ ]*\) (Ctrl-C to stop)$/\1/p' "$work/serve.log")"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; echo "run.sh: the server stopped" >&2; exit 1; }
  sleep 0.2
done
[ -n "$url" ] || { cat "$work/serve.log" >&2; echo "run.sh: the server did not start in 2 minutes" >&2; exit 1; }
url="${url%/}"
for i in $(seq 1 300); do
  curl -sf "$url/v2/health/ready" >/dev/null && break
  [ "$i" -lt 300 ] || { cat "$work/serve.log" >&2; echo "run.sh: the server is not ready after a minute" >&2; exit 1; }
  sleep 0.2
done
echo "serving $work/repo at $url"

# show NAME CURL-ARGS...: prints the command (the token and the work folder shortened), runs it,
# prints the answer with its HTTP status, and saves the answer as WORK/responses/NAME.json
show() {
  local name="$1"; shift
  local shown="curl -s" a
  for a in "$@"; do
    a="${a//$url/\$URL}"; a="${a//$token/\$TOKEN}"; a="${a//$work/\$WORK}"
    if [[ "$a" =~ ^[A-Za-z0-9_@%+=:,./\$-]+$ ]]; then shown+=" $a"
    elif [[ "$a" == *'"'* ]]; then shown+=" '$a'"
    else shown+=" \"$a\""
    fi
  done
  printf '\n$ %s\n' "$shown"
  local status
  status="$(curl -s -o "$work/responses/$name.json" -w '%{http_code}' "$@")"
  printf '%s\n' "$status" > "$work/responses/$name.status"
  cat "$work/responses/$name.json"
  printf '\n(HTTP %s)\n' "$status"
}
auth=(-H "Authorization: Bearer $token")
json=(-H 'Content-Type: application/json')

log "what is served"
show index "$url/v2/repository/index"
show side-adapters "$url/v2/models/side/adapters"
show multi-model "$url/v2/models/multi"

# a request body: 4 rows of [1,32,32] pixels, scaled as the package's preprocessing scales them
# ([0,1] -> [-1,1]): a mid-gray surface with fixed pseudo-random noise; with the given parameters
body() {
  awk -v params="$1" 'BEGIN {
    s = 12345; printf "{\"inputs\":[{\"name\":\"image\",\"shape\":[4,1,32,32],\"datatype\":\"FP32\",\"data\":["
    for (i = 0; i < 4 * 1024; i++) {
      s = (s * 1103515245 + 12345) % 2147483648
      printf "%s%.4f", (i ? "," : ""), -0.2 + 0.2 * s / 2147483648
    }
    printf "]}],\"parameters\":%s}", params
  }'
}
body '{"adapter":"metal-dim"}' > "$work/req-metal-dim.json"
body '{"adapter":"fabric"}' > "$work/req-fabric.json"
body '{}' > "$work/req-base.json"
body '{"adapters":["metal-dim","fabric",null,"fabric"]}' > "$work/req-mixed.json"

log "per-request adapter on the side package: the same 4 rows with each adapter, and with none"
show infer-side-metal-dim -X POST "${json[@]}" -d @"$work/req-metal-dim.json" "$url/v2/models/side/infer"
show infer-side-fabric -X POST "${json[@]}" -d @"$work/req-fabric.json" "$url/v2/models/side/infer"
show infer-side-base -X POST "${json[@]}" -d @"$work/req-base.json" "$url/v2/models/side/infer"

log "one mixed batch on the multi package: rows 0..3 with metal-dim, fabric, none, fabric"
show infer-multi-mixed -X POST "${json[@]}" -d @"$work/req-mixed.json" "$url/v2/models/multi/infer"

# the 5 logits of row R in a saved answer
row() {
  tr -d ' \n' < "$work/responses/$1.json" | sed 's/.*"data":\[\([^]]*\)\].*/\1/' | tr ',' '\n' \
    | awk -v r="$2" 'NR > 5 * r && NR <= 5 * (r + 1)'
}
# the largest absolute difference between row R of answer A and row Q of answer B
diff_rows() {
  paste <(row "$1" "$2") <(row "$3" "$4") \
    | awk 'BEGIN { m = 0; n = 0 } { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ }
           END { if (n != 5) { print "rows differ in length"; exit 1 } printf "%.2g", m }'
}
echo
echo "each row of the mixed batch against the per-request answer (largest absolute difference):"
echo "  row 0 (metal-dim): $(diff_rows infer-multi-mixed 0 infer-side-metal-dim 0)"
echo "  row 1 (fabric):    $(diff_rows infer-multi-mixed 1 infer-side-fabric 1)"
echo "  row 2 (base):      $(diff_rows infer-multi-mixed 2 infer-side-base 2)"
echo "  row 3 (fabric):    $(diff_rows infer-multi-mixed 3 infer-side-fabric 3)"

log "register fabric-v2 at run time (side packages)"
show register-no-token -X POST "${json[@]}" -d '{"path":"bundles/fabric-v2"}' "$url/v2/models/side/adapters/fabric-v2"
show register-path -X POST "${auth[@]}" "${json[@]}" -d '{"path":"bundles/fabric-v2"}' \
  "$url/v2/models/side/adapters/fabric-v2"
show register-upload -X POST "${auth[@]}" \
  -F "adapter_config.json=@$work/adapters/fabric-v2/adapter_config.json" \
  -F "adapter_model.safetensors=@$work/adapters/fabric-v2/adapter_model.safetensors" \
  "$url/v2/models/side/adapters/fabric-v2"
show side-adapters-after "$url/v2/models/side/adapters"

log "classify images: a metal-dim test image and a fabric test image, with and without their adapters"
dim_img="$(ls "$work/data/metal-dim-test/scratch/"*.png | head -n 1)"
fab_img="$(ls "$work/data/fabric-test/spot/"*.png | head -n 1)"
show classify-dim-base -X POST -H 'Content-Type: image/png' --data-binary @"$dim_img" \
  "$url/v2/models/side/classify?top=2"
show classify-dim-adapter -X POST -H 'Content-Type: image/png' --data-binary @"$dim_img" \
  "$url/v2/models/side/classify?top=2&adapter=metal-dim"
show classify-fabric-v2 -X POST -F image=@"$fab_img" "$url/v2/models/side/classify?top=2&adapter=fabric-v2"

log "metrics (Prometheus): requests per model, adapter and status; rows per pass"
printf '\n$ curl -s $URL/metrics | grep -E "^peft4j_(request_seconds|batch_rows)_(count|max)"\n'
curl -s "$url/metrics" > "$work/responses/metrics.txt"
grep -E '^peft4j_(request_seconds|batch_rows)_(count|max)' "$work/responses/metrics.txt" || true

log "remove fabric-v2"
show delete -X DELETE "${auth[@]}" "$url/v2/models/side/adapters/fabric-v2"
show classify-deleted -X POST -F image=@"$fab_img" "$url/v2/models/side/classify?adapter=fabric-v2"

stop
trap - EXIT
log "done; the responses are in $work/responses"
