#!/usr/bin/env bash
# Ingest benchmark: JSONL -> Parquet throughput per core and peak memory, on corpora built
# by ../shared/bench/make_corpus.py, each run followed by pyarrow's JSON reader into Parquet
# on the same file and threads (scripts/bench_pyarrow_ingest.py; needs `pip install
# pyarrow`). Prints two lines per run; BENCHMARKS.md records them.
#
#   scripts/bench_ingest.sh                 # 500 MB at 1 and 2 threads, then 2 GB at 2 threads
#   BENCH_DIR=/big/disk scripts/bench_ingest.sh
#   MATHLAKE_BIN=/tmp/mathlake-before ...   # a build kept aside instead of cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-/tmp/mathlake-bench}
mkdir -p "$dir"
[ -n "${MATHLAKE_BIN:-}" ] || cargo build --release --quiet
bin=${MATHLAKE_BIN:-target/release/mathlake}

corpus() { # MB -> path (built once, reused while its manifest says it is complete)
  local out="$dir/corpus-$1mb.jsonl"
  [ -f "$out.manifest.json" ] || python3 ../shared/bench/make_corpus.py --target-mb "$1" --out "$out" >/dev/null
  echo "$out"
}

run() { # corpus threads
  local input=$1 threads=$2 lake="$dir/lake"
  rm -rf "$lake"
  local text_bytes
  text_bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text_bytes"])' "$input.manifest.json")
  /usr/bin/time -v "$bin" ingest "$input" --table documents --map text=text --source bench \
      --lake "$lake" --threads "$threads" --quiet --json >"$dir/summary.json" 2>"$dir/time.txt"
  python3 - "$dir/summary.json" "$dir/time.txt" "$text_bytes" "$threads" "$input" <<'PY'
import json, re, sys
summary = json.load(open(sys.argv[1])); timing = open(sys.argv[2]).read()
text_mb = int(sys.argv[3]) / 1e6; threads = int(sys.argv[4])
wall = summary["seconds"]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", timing).group(1)) + float(re.search(r"System time \(seconds\): ([\d.]+)", timing).group(1))
print(f"{sys.argv[5].rsplit('/',1)[-1]}: {text_mb:.0f} MB text, {threads} thread(s): {wall:.1f} s wall, "
      f"{text_mb / wall:.1f} MB/s, {text_mb / wall / threads:.1f} MB/s per thread, {text_mb / cpu:.1f} MB/s per CPU-second, "
      f"peak RSS {rss:.0f} MiB; read {summary['read']} = written {summary['written']} + dup {summary['duplicates']} "
      f"+ quarantined {summary['quarantined']}; {summary['bytes_written'] / 1e6:.0f} MB Parquet")
PY
  python3 scripts/bench_pyarrow_ingest.py "$input" "$threads"
}

small=$(corpus 500)
run "$small" 1
run "$small" 2
big=$(corpus 2000)
run "$big" 2
