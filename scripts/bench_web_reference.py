"""trafilatura and resiliparse on the HTML pages of a WARC crawl: pages per CPU-second of
their extraction (warcio's reading timed apart) and the share of the crawl's formulas
(pages.warc.json, from scripts/make_web_fixtures.py) whose LaTeX each output holds,
compared without white space and without delimiters; with --mathlake, the same share for
mathlake's documents. Run by scripts/bench_web.sh."""

import argparse
import json
import time

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree
from warcio.archiveiterator import ArchiveIterator
import trafilatura


def pages(path):
    """(url, body) of the 2xx HTML responses, as ingest takes them."""
    out = []
    with open(path, "rb") as f:
        for record in ArchiveIterator(f):
            body = record.content_stream().read()
            if record.rec_type != "response" or not record.http_headers:
                continue
            ctype = record.http_headers.get_header("Content-Type") or ""
            if record.http_headers.get_statuscode().startswith("2") and "html" in ctype:
                out.append((record.rec_headers.get_header("WARC-Target-URI"), body))
    return out


def resiliparse(body):
    html = bytes_to_str(body, detect_encoding(body))
    return extract_plain_text(HTMLTree.parse(html), main_content=True)


def trafilatura_default(body):
    return trafilatura.extract(body) or ""


def flat(text):
    return "".join(text.split())


def formulas_kept(texts, manifest):
    """Formulas kept by renderer (KaTeX, MathJax 4, MathJax 3's MathML only): (kept, total)."""
    counts = {}
    for entry in manifest:
        if "formulas" not in entry:
            continue
        text = flat(texts.get(entry["url"], ""))
        kept, total = counts.get(entry["renderer"], (0, 0))
        for formula in entry["formulas"]:
            kept, total = kept + (flat(formula) in text), total + 1
        counts[entry["renderer"]] = (kept, total)
    return counts


def describe(counts):
    kept, total = (sum(c[i] for c in counts.values()) for i in (0, 1))
    parts = ", ".join(f"{r} {k}/{t}" for r, (k, t) in sorted(counts.items()))
    return f"formulas kept {kept} of {total} ({100 * kept / max(total, 1):.1f}%: {parts})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warc")
    parser.add_argument("manifest")
    parser.add_argument("--mathlake", help="mathlake's documents as JSON lines {url, text}")
    args = parser.parse_args()
    manifest = json.load(open(args.manifest))
    start = time.process_time()
    crawl = pages(args.warc)
    read = time.process_time() - start
    print(f"warcio reading {len(crawl)} pages: {read:.2f} CPU-s")
    for name, extract in [("trafilatura 2.x extract(), defaults", trafilatura_default),
                          ("resiliparse extract_plain_text(main_content=True)", resiliparse)]:
        start = time.process_time()
        texts = {url: extract(body) for url, body in crawl}
        cpu = time.process_time() - start
        print(f"{name}: {len(crawl)} pages in {cpu:.2f} CPU-s: {len(crawl) / cpu:.1f} pages per CPU-second "
              f"({len(crawl) / (cpu + read):.1f} with warcio's reading); {describe(formulas_kept(texts, manifest))}")
    if args.mathlake:
        texts = {}
        for line in open(args.mathlake):
            row = json.loads(line)
            texts[row["url"]] = row["text"]
        print(f"mathlake: {describe(formulas_kept(texts, manifest))}")


if __name__ == "__main__":
    main()
