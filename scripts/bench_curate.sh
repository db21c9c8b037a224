#!/usr/bin/env bash
# Curation benchmark: sql/curate_documents.sql (quality signals, language, math score, the
# split) per core on the 500 MB corpus of ../shared/bench/make_corpus.py, and datatrove's
# Gopher, C4 and FineWeb filters on the first documents of the same file, in the same run.
#
#   scripts/bench_curate.sh                  # needs `pip install datatrove spacy` for the reference
#   BENCH_DIR=/big/disk DATATROVE_DOCS=20000 scripts/bench_curate.sh
#   MATHLAKE_BIN=/tmp/mathlake-before scripts/bench_curate.sh   # a build kept aside, no cargo build
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-/tmp/mathlake-bench}
mkdir -p "$dir"
[ -n "${MATHLAKE_BIN:-}" ] || cargo build --release --quiet
bin=${MATHLAKE_BIN:-target/release/mathlake}
corpus="$dir/corpus-500mb.jsonl"
[ -f "$corpus.manifest.json" ] || python3 ../shared/bench/make_corpus.py --target-mb 500 --out "$corpus" >/dev/null
lake="$dir/curate-lake"
rm -rf "$lake"
"$bin" ingest "$corpus" --table documents --map text=text --source bench --lake "$lake" --quiet >/dev/null
text_bytes=$("$bin" query --lake "$lake" --json "SELECT sum(octet_length(text)) AS n FROM documents" |
  python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["n"])')

for threads in 1 2; do
  /usr/bin/time -v "$bin" sql sql/curate_documents.sql --lake "$lake" --threads "$threads" --quiet --json \
    >"$dir/curate.json" 2>"$dir/curate-time.txt"
  python3 - "$dir/curate.json" "$dir/curate-time.txt" "$text_bytes" "$threads" <<'PY'
import json, re, sys
report = json.load(open(sys.argv[1])); timing = open(sys.argv[2]).read()
mb = int(sys.argv[3]) / 1e6; threads = int(sys.argv[4])
cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", timing).group(1)) for k in ("User", "System"))
wall = sum(s["seconds"] for s in report["statements"])
signals = report["statements"][0]["seconds"]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
print(f"curate_documents.sql, {mb:.0f} MB text, {threads} thread(s): {wall:.1f} s wall ({signals:.1f} s the signals "
      f"statement), {mb / wall:.1f} MB/s, {mb / cpu:.1f} MB/s per CPU-second, peak RSS {rss:.0f} MiB")
PY
done
python3 scripts/bench_datatrove_curate.py "$corpus" "${DATATROVE_DOCS:-10000}"
