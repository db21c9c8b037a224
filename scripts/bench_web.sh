#!/usr/bin/env bash
# Web input benchmark: a WARC crawl -> documents, pages per CPU-second, mathlake against
# trafilatura and resiliparse on the same pages (scripts/bench_web_reference.py), and the
# share of the crawl's formulas each gives back as LaTeX. mathlake's time is the whole
# ingest (reading, gzip, HTTP, charset, extraction, ids, Parquet writes); the references'
# is their extraction alone, warcio's reading timed apart.
#
# The crawl: MATH and GSM8K problems rendered by KaTeX and MathJax 4 plus trafilatura's test
# pages, written by scripts/make_web_fixtures.py (needs warcio, trafilatura, node with katex
# and mathjax):
#   python3 scripts/make_web_fixtures.py RESOURCES --out /tmp/mathlake-bench/web --math 1000 --gsm8k 250
#   scripts/bench_web.sh
#   MATHLAKE_BIN=/tmp/mathlake-before scripts/bench_web.sh   # a build kept aside
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCH_DIR:-/tmp/mathlake-bench}/web
[ -f "$dir/pages.warc.gz" ] || { echo "no crawl at $dir/pages.warc.gz: see the top of $0" >&2; exit 1; }
python3 -c 'import trafilatura, resiliparse, warcio' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check trafilatura lxml_html_clean resiliparse warcio
[ -n "${MATHLAKE_BIN:-}" ] || cargo build --release --quiet
bin=${MATHLAKE_BIN:-target/release/mathlake}

for threads in 1 2; do
  rm -rf "$dir/lake"
  /usr/bin/time -v "$bin" ingest "$dir/pages.warc.gz" --preset web --lake "$dir/lake" --threads "$threads" \
      --quiet --json >"$dir/summary.json" 2>"$dir/time.txt"
  python3 - "$dir/summary.json" "$dir/time.txt" "$threads" <<'PY'
import json, re, sys
summary = json.load(open(sys.argv[1])); timing = open(sys.argv[2]).read(); threads = int(sys.argv[3])
cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", timing).group(1)) for k in ("User", "System"))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
pages = summary["written"] + summary["duplicates"] + summary["quarantined"]
print(f"mathlake, {threads} thread(s): {pages} pages in {summary['seconds']:.2f} s wall, {cpu:.2f} CPU-s: "
      f"{pages / cpu:.0f} pages per CPU-second, peak RSS {rss:.0f} MiB; read {summary['read']} = written "
      f"{summary['written']} + dup {summary['duplicates']} + quarantined {summary['quarantined']} + skipped {summary.get('skipped', 0)}")
PY
done
"$bin" query --json --quiet --lake "$dir/lake" "SELECT url, text FROM documents" >"$dir/documents.jsonl"
python3 scripts/bench_web_reference.py "$dir/pages.warc.gz" "$dir/pages.warc.json" --mathlake "$dir/documents.jsonl"
