#!/usr/bin/env bash
# Dedup and decontamination benchmark on the corpus of ../shared/bench/make_corpus.py:
# MinHash signatures per core, full dedup (time and peak memory at several corpus sizes),
# decontamination per core against every evaluation set of ../shared/data, and datatrove's
# MinHash dedup on the first documents of the same file, in the same run.
#
#   scripts/bench_dedup.sh    # 1000 MB; the reference needs `pip install datatrove tokenizers 'xxhash<3.5'`
#                             # (datatrove's default xxhash call passes str, which xxhash 3.5 refuses)
#   SIZES="1000 2000 4000" DATATROVE_DOCS=20000 scripts/bench_dedup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-/tmp/mathlake-bench}
mkdir -p "$dir"
cargo build --release --quiet
bin=$(pwd)/target/release/mathlake
timed() { /usr/bin/time -f "%e %U %S %M" -o "$dir/time.txt" "$@"; }
report() { # label, text bytes
  python3 - "$1" "$2" "$dir/time.txt" <<'PY'
import sys
label, text = sys.argv[1], int(sys.argv[2]) / 1e6
wall, user, system, rss = open(sys.argv[3]).read().split()[-4:]
cpu = float(user) + float(system)
print(f"{label}: {text:.0f} MB text, {float(wall):.1f} s wall, {cpu:.1f} CPU-s, "
      f"{text / cpu:.1f} MB/s per CPU-second, peak RSS {int(rss) / 1024:.0f} MiB")
PY
}

for mb in ${SIZES:-1000}; do
  corpus="$dir/corpus-${mb}mb.jsonl"
  [ -f "$corpus.manifest.json" ] || python3 ../shared/bench/make_corpus.py --target-mb "$mb" --out "$corpus" >/dev/null
  lake="$dir/dedup-lake-$mb"
  if [ ! -d "$lake/documents" ]; then
    "$bin" ingest "$corpus" --table documents --map text=text --source bench --lake "$lake" --quiet >/dev/null
    for f in gsm8k_test:gsm8k math_test:math math500_test:math500; do
      "$bin" ingest "../shared/data/problems/${f%%:*}.jsonl" --preset "${f##*:}" --lake "$lake" --quiet >/dev/null
    done
  fi
  bytes=$("$bin" query --lake "$lake" --json "SELECT sum(octet_length(text)) AS n FROM documents" |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["n"])')
  if [ "$mb" = "${SIZES%% *}" ] || [ -z "${SIZES:-}" ]; then
    timed "$bin" query --threads 1 --lake "$lake" "SELECT sum(octet_length(text)) FROM documents" >/dev/null
    report "scan only, 1 thread" "$bytes"
    timed "$bin" query --threads 1 --lake "$lake" "SELECT count(minhash(text)) FROM documents" >/dev/null
    report "minhash(text), 1 thread" "$bytes"
    timed "$bin" decontaminate --threads 1 --lake "$lake" --input documents --benchmarks problems \
      --to clean --report contamination --quiet >/dev/null
    report "decontaminate vs GSM8K, MATH, MATH500 test, 1 thread" "$bytes"
  fi
  for limit in 512M 1G; do
    timed "$bin" dedup --lake "$lake" --input documents --to unique --clusters clusters --memory-limit "$limit" \
      --quiet --json >"$dir/dedup-$mb.json"
    report "dedup $mb MB corpus, --memory-limit $limit, 2 threads" "$bytes"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["dedup"]; print("  ", {k: r[k] for k in ("input_rows","output_rows","removed","clusters","candidate_pairs","rejected_pairs")})' "$dir/dedup-$mb.json"
  done
done
first=${SIZES:-1000}; first=${first%% *}
python3 scripts/bench_datatrove_minhash.py "$dir/corpus-${first}mb.jsonl" "${DATATROVE_DOCS:-20000}"
