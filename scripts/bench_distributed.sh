#!/usr/bin/env bash
# The curation file on Ballista: sql/curate_documents.sql over the benchmark corpus of
# ../shared/bench/make_corpus.py, on the local engine, then on a scheduler with one
# executor (every core) and with two (half the cores each), all on this machine, with the
# same binary (the test profile with the feature `distributed`) in the same run.
#
#   scripts/bench_distributed.sh
#   BENCH_DIR=/big/disk BENCH_MB=2000 scripts/bench_distributed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-/tmp/mathlake-bench}
mb=${BENCH_MB:-500}
mkdir -p "$dir"
cargo build --profile ci --features distributed --quiet --bin mathlake
bin=target/ci/mathlake
cores=$(nproc)
corpus="$dir/corpus-${mb}mb.jsonl"
[ -f "$corpus.manifest.json" ] || python3 ../shared/bench/make_corpus.py --target-mb "$mb" --out "$corpus" >/dev/null
lake="$dir/distributed-lake"
rm -rf "$lake"
"$bin" ingest "$corpus" --table documents --map text=text --source bench --lake "$lake" --quiet >/dev/null
text_bytes=$("$bin" query --lake "$lake" --json "SELECT sum(octet_length(text)) AS n FROM documents" |
  python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["n"])')

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; exit 1; }

# $1: label, $2: engine
curate() {
  /usr/bin/time -f "%e %U %S" "$bin" sql sql/curate_documents.sql --lake "$lake" --engine "$2" --quiet --json \
    >"$dir/distributed.json" 2>"$dir/distributed-time.txt"
  python3 - "$dir/distributed.json" "$dir/distributed-time.txt" "$text_bytes" "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1])); driver = open(sys.argv[2]).read().split()
mb = int(sys.argv[3]) / 1e6
wall = sum(s["seconds"] for s in report["statements"])
signals = report["statements"][0]["seconds"]
print(f"{sys.argv[4]:<34} {wall:6.1f} s wall ({signals:5.1f} s the signals statement), {mb / wall:5.1f} MB/s; "
      f"driver CPU {float(driver[1]) + float(driver[2]):.1f} s")
PY
}

# $1: executors, each with cores / $1 slots
cluster() {
  local port slots=$((cores / $1))
  port=$(free_port)
  "$bin" scheduler --port "$port" >"$dir/scheduler.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
  for n in $(seq 1 "$1"); do
    local flight grpc
    flight=$(free_port); grpc=$(free_port)
    "$bin" executor --scheduler "127.0.0.1:$port" --port "$flight" --grpc-port "$grpc" --slots "$slots" \
      --work-dir "$dir/executor-$n" >"$dir/executor-$n.log" 2>&1 &
    pids+=($!)
    wait_port "$flight"
  done
  curate "Ballista, $1 executor(s) x $slots slot(s)" "ballista://127.0.0.1:$port"
  # CPU seconds of the cluster's processes over the run (user + system).
  local ticks=0 pid
  for pid in "${pids[@]}"; do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "  scheduler and executors: $((ticks / $(getconf CLK_TCK))) CPU s"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
}

echo "sql/curate_documents.sql, $((text_bytes / 1000000)) MB of text, $cores cores"
curate "local engine, $cores threads" local
cluster 1
cluster 2
