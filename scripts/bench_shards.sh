#!/usr/bin/env bash
# Tokenize and loader benchmarks on the 100 MB corpus of ../shared/bench/make_corpus.py.
#
# 1. `mathlake tokenize` (lake table in, tokenized table out) with tokenizers/gpt2.json on
#    1 and 2 threads, and, in the same run, the two encoders alone on the same texts and
#    threads (benches/tokenize.rs): HF tokenizers' batch encoding and the fast encoder,
#    with a count of texts whose ids differ; then the reference end to end, the lake table
#    through the Python tokenizers and pyarrow (scripts/bench_hf_tokenize.py; needs `pip
#    install tokenizers pyarrow`).
# 2. The tokenized corpus packed into one CPT arm, and the loader reading every row of it
#    on one thread (benches/loader.rs).
#
#   scripts/bench_shards.sh
#   BENCH_DIR=/big/disk CORPUS_MB=500 scripts/bench_shards.sh
#   MATHLAKE_BIN=/tmp/mathlake-before ...   # a build kept aside instead of cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-/tmp/mathlake-bench}
mb=${CORPUS_MB:-100}
mkdir -p "$dir"
[ -n "${MATHLAKE_BIN:-}" ] || cargo build --release --quiet
cargo bench --no-run --quiet --bench tokenize --bench loader 2>/dev/null
bin=${MATHLAKE_BIN:-target/release/mathlake}
tokenizer=../shared/data/tokenizers/gpt2.json
corpus="$dir/corpus-${mb}mb.jsonl"
[ -f "$corpus.manifest.json" ] || python3 ../shared/bench/make_corpus.py --target-mb "$mb" --out "$corpus" >/dev/null
lake="$dir/shards-lake-$mb"
rm -rf "$lake"
"$bin" ingest "$corpus" --table documents --map text=text --source bench --lake "$lake" --quiet >/dev/null

for threads in 1 2; do
  /usr/bin/time -v "$bin" tokenize --input documents --tokenizer "$tokenizer" --to tokens --lake "$lake" \
    --threads "$threads" --quiet --json >"$dir/tokenize.json" 2>"$dir/tokenize-time.txt"
  cargo bench --quiet --bench tokenize -- "$lake" "SELECT text FROM documents" "$tokenizer" "$threads" \
    2>/dev/null >"$dir/encoders.json"
  python3 - "$dir/tokenize.json" "$dir/tokenize-time.txt" "$dir/encoders.json" "$threads" <<'PY'
import json, re, sys
stage = json.load(open(sys.argv[1]))["tokenize"]; timing = open(sys.argv[2]).read()
enc = json.load(open(sys.argv[3])); threads = int(sys.argv[4])
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", timing).group(1)) for k in ("User", "System"))
mb = stage["text_bytes"] / 1e6
ours = mb / stage["seconds"]; hf = enc["hf"]["mb_per_s"]; fast = enc["fast"]["mb_per_s"]
print(f"tokenize, {mb:.0f} MB, {threads} thread(s): mathlake tokenize ({stage['encoder']} encoder) {ours:.1f} MB/s "
      f"({ours / threads:.1f} per thread; {cpu:.2f} CPU-s, {mb / cpu:.1f} MB per CPU-s; {stage['tokens']:,} tokens, "
      f"peak RSS {rss:.0f} MiB)")
print(f"  encoders alone: HF tokenizers encode_batch_fast {hf:.2f} MB/s ({hf / threads:.2f} per thread), "
      f"fast {fast:.1f} MB/s ({fast / threads:.1f} per thread): {fast / hf:.1f}x; "
      f"{enc['mismatching_texts']} of {enc['texts']:,} texts with different ids")
PY
  python3 scripts/bench_hf_tokenize.py "$lake" documents "$tokenizer" "$threads"
done

cat >"$dir/bench-arm.toml" <<TOML
name = "bench"
mode = "cpt"
sequence_length = 2048
validation_fraction = 0.01

[[source]]
name = "bench"
input = "tokens"
tokens = $(("$mb" * 200000))
TOML
/usr/bin/time -v "$bin" shards build --mixture "$dir/bench-arm.toml" --to "$dir/shards-$mb" --lake "$lake" --quiet --json \
  >"$dir/shards.json" 2>"$dir/shards-time.txt"
python3 - "$dir/shards.json" "$dir/shards-time.txt" <<'PY'
import json, re, sys
report = json.load(open(sys.argv[1]))["shards"]; timing = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
m = report["manifest"]
print(f"shards build: {m['train']['tokens']:,} training tokens in {len(m['train']['shards'])} shards, "
      f"{report['seconds']:.1f} s, peak RSS {rss:.0f} MiB")
PY
/usr/bin/time -v cargo bench --quiet --bench loader -- "$dir/shards-$mb" 8 2>"$dir/loader-time.txt" >"$dir/loader.json"
python3 - "$dir/loader.json" "$dir/loader-time.txt" <<'PY'
import json, re, sys
timing = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
for line in open(sys.argv[1]):
    r = json.loads(line)
    kind = "batches as candle tensors" if r["tensors"] else "batches"
    print(f"loader, 1 thread, batch 8 x 2048, {kind}: {r['tokens']:,} tokens in {r['seconds']:.2f} s, "
          f"{r['tokens_per_second'] / 1e6:.1f} M tokens/s")
print(f"loader peak RSS {rss:.0f} MiB")
PY
