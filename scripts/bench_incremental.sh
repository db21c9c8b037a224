#!/usr/bin/env bash
# Incremental ETL benchmark: the cost of a scheduled run after 1% new data against a full
# run, on the corpus of ../shared/bench/make_corpus.py cut into 100 objects. The job
# (written below) ingests an inbox folder, curates with sql/curate_documents.sql,
# deduplicates the math documents, decontaminates them against GSM8K and MATH test, and
# tokenizes with GPT-2's tokenizer, every stage incremental. Measured: one run over all 100 objects in a fresh
# lake; a lake that holds 99, then the run after the 100th arrives; then a run with
# nothing new. Prints one line per run; BENCHMARKS.md records them.
#
#   scripts/bench_incremental.sh              # 500 MB, the binary of `cargo build --profile ci`
#   MB=100 BIN=target/release/mathlake scripts/bench_incremental.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${MB:-500}
dir=${BENCH_DIR:-/tmp/mathlake-bench}/incremental-$mb
bin=${BIN:-$(pwd)/target/ci/mathlake}
[ -x "$bin" ] || cargo build --profile ci --quiet
mkdir -p "$dir"
objects="$dir/objects"
if [ ! -f "$objects/corpus-00099.jsonl" ]; then
  python3 ../shared/bench/make_corpus.py --target-mb "$mb" --out "$dir/corpus.jsonl" \
    --shard-dir "$objects" --shards 100 >/dev/null
fi
data=$(cd ../shared/data && pwd)
cat >"$dir/job.toml" <<TOML
[[stage]]
kind = "ingest"
name = "gsm8k"
inputs = ["$data/problems/gsm8k_test.jsonl"]
preset = "gsm8k"

[[stage]]
kind = "ingest"
name = "math"
inputs = ["$data/problems/math_test.jsonl"]
preset = "math"

[[stage]]
kind = "ingest"
name = "web"
inputs = ["$dir/inbox"]
table = "documents"
map = ["text=text"]
source = "bench"

[[stage]]
kind = "sql"
name = "curate"
file = "$(pwd)/sql/curate_documents.sql"
incremental = true

[[stage]]
kind = "dedup"
name = "dedup"
input = "math_documents"
to = "math_documents_unique"
incremental = true

[[stage]]
kind = "decontaminate"
name = "decontaminate"
input = "math_documents_unique"
benchmarks = ["problems"]
to = "math_documents_clean"
report = "math_contamination"
incremental = true

[[stage]]
kind = "tokenize"
name = "tokenize"
input = "math_documents_clean"
tokenizer = "$data/tokenizers/gpt2.json"
to = "math_tokens"
incremental = true
TOML

timed_run() { # label, lake
  local start end
  start=$(date +%s.%N)
  "$bin" run "$dir/job.toml" --lake "$2" --quiet >"$dir/$1.out"
  end=$(date +%s.%N)
  python3 -c "print(f'$1: {$end - $start:.1f} s wall')"
}

rm -rf "$dir/inbox" "$dir/lake-full" "$dir/lake-inc"
mkdir -p "$dir/inbox"
cp "$objects"/corpus-000[0-9][0-9].jsonl "$dir/inbox/"
timed_run "full run, 100 objects" "$dir/lake-full"
rm "$dir/inbox/corpus-00099.jsonl"
timed_run "first run, 99 objects" "$dir/lake-inc"
cp "$objects/corpus-00099.jsonl" "$dir/inbox/"
timed_run "run after the 100th object (1% new)" "$dir/lake-inc"
timed_run "run with nothing new" "$dir/lake-inc"
query='SELECT count(*) AS n, sum(token_count) AS tokens FROM math_tokens'
echo "full:        $("$bin" query --json --lake "$dir/lake-full" "$query")"
echo "incremental: $("$bin" query --json --lake "$dir/lake-inc" "$query")"
unique='SELECT count(*) AS n, sum(CASE WHEN kept THEN 0 ELSE 1 END) AS removed FROM math_documents_unique_clusters'
echo "clusters full:        $("$bin" query --json --lake "$dir/lake-full" "$unique")"
echo "clusters incremental: $("$bin" query --json --lake "$dir/lake-inc" "$unique")"
ids='SELECT id FROM math_documents_unique ORDER BY id'
if cmp -s <("$bin" query --json --lake "$dir/lake-full" "$ids") <("$bin" query --json --lake "$dir/lake-inc" "$ids"); then
  echo "math_documents_unique: the same ids in both lakes"
else
  echo "math_documents_unique: the lakes differ"
fi
grep -h "appended\|rebuilt\|unchanged" "$dir/run after the 100th object (1% new).out" | sed 's/^ */  /'
