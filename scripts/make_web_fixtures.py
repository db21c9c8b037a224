"""Writes the web-input test fixtures in tests/data/web from real pages and real renderers.

- pages.warc.gz: a crawl written with warcio. HTML responses: the test pages of
  trafilatura's source distribution, and MATH / GSM8K problems with their solutions
  rendered by KaTeX and by MathJax 4 (scripts/render_math.mjs) inside a page with a site
  header, a cookie banner, related links and a footer. Around them what a crawl also holds:
  a warcinfo record, requests, metadata and revisit records, an image, a PDF, a redirect,
  a 404, a gzip-encoded chunked page and a Latin-1 page.
- pages.warc.json: each record as warcio reads it back (offset, type, URL, status,
  content type), what ingest must do with it, and for math pages their formulas.
- pages.warc.wet.gz: WET conversion records (text as trafilatura extracts it).
- webpage.html.gz: trafilatura's test page as a file, for .html input.

Needs: pip install warcio trafilatura lxml_html_clean; npm install katex mathjax (run from a
folder where node finds them, or set NODE_PATH). Usage:
    python3 scripts/make_web_fixtures.py /path/to/trafilatura-sdist/tests/resources
    python3 scripts/make_web_fixtures.py RESOURCES --out DIR --math 1000 --gsm8k 250   # benchmark crawl
"""

import argparse
import gzip
import io
import json
import re
import subprocess
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "problems"
OUT = ROOT / "tests" / "data" / "web"
TRAFILATURA_PAGES = ["apache.html", "http_sample.html", "httpbin_sample.html", "mozilla.org.firefox.developer.html",
                     "utf8.html", "webpage.html.gz"]

FORMULA = re.compile(
    r"\\begin\{(align\*?|equation\*?|eqnarray\*?|gather\*?|multline\*?)\}.+?\\end\{\1\}"
    r"|\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<!\\)\$((?:\\\$|[^$])+?)\$",
    re.S,
)


def math_segments(text):
    """Text and formulas of a MATH problem or solution, in order."""
    segments, at = [], 0
    for m in FORMULA.finditer(text):
        if m.start() > at:
            segments.append({"text": text[at:m.start()]})
        if m.group(1):
            segments.append({"tex": m.group(0), "display": True})
        else:
            inline = m.group(5) is not None or m.group(4) is not None
            tex = next(g for g in m.groups()[1:] if g is not None)
            segments.append({"tex": tex.strip(), "display": not inline})
        at = m.end()
    if at < len(text):
        segments.append({"text": text[at:]})
    return segments


def gsm8k_segments(text):
    """GSM8K's calculator annotations <<48/2=24>> as inline formulas."""
    segments, at = [], 0
    for m in re.finditer(r"<<(.+?)>>", text):
        segments.append({"text": text[at:m.start()]})
        segments.append({"tex": m.group(1), "display": False})
        at = m.end()
    segments.append({"text": text[at:]})
    return segments


def page(title, problem, solution):
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | Math Help</title>
<link rel="stylesheet" href="/katex.min.css"></head>
<body class="post-template has-sidebar">
<header class="site-header"><a href="/">Math Help</a>
<nav class="main-nav"><a href="/algebra">Algebra</a> <a href="/geometry">Geometry</a> <a href="/about">About</a></nav></header>
<div id="cookie-consent" class="banner">We use cookies to improve your experience. <button>Accept</button></div>
<main><article><h1>{title}</h1>
<section class="problem">{problem}</section>
<h2>Solution</h2>
<section class="solution">{solution}</section></article>
<div class="related-posts"><h3>Related problems</h3><ul>
<li><a href="/p/1">Quadratic equations</a></li><li><a href="/p/2">Counting with symmetry</a></li></ul></div>
</main>
<footer><p>&copy; 2026 Math Help. All rights reserved.</p></footer>
</body></html>
"""


def render(pages):
    rendered = subprocess.run(["node", str(ROOT / "scripts" / "render_math.mjs")], input=json.dumps(pages),
                              stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(rendered.stdout)


def http(status, headers):
    return StatusAndHeaders(status, headers, protocol="HTTP/1.1")


def chunked(body, size=700):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def main(resources, out, math_pages, gsm8k_pages):
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    with open(DATA / "math_test.jsonl") as f:
        for line in list(f)[:math_pages]:
            r = json.loads(line)
            problems.append((f"MATH {r['type']} {r['idx']}", math_segments(r["problem"]), math_segments(r["solution"])))
    with open(DATA / "gsm8k_test.jsonl") as f:
        for i, line in enumerate(list(f)[:gsm8k_pages]):
            r = json.loads(line)
            problems.append((f"GSM8K test {i}", [{"text": r["question"]}], gsm8k_segments(r["answer"])))
    parts = [seg for _, p, s in problems for seg in (p, s)]
    html = render(parts)

    expected = {}  # url -> what ingest must make of it
    records = []  # (url, type, payload, http headers or None, warc headers)
    names = {"katex": "KaTeX", "mathjax": "MathJax", "mathml": "MathJax 3"}
    for renderer, name in names.items():
        for i, (title, p, s) in enumerate(problems):
            url = f"https://mathhelp.example.org/{renderer}/{i}"
            body = page(f"{title} ({name})", html[renderer][2 * i], html[renderer][2 * i + 1]).encode()
            formulas = [seg["tex"] for seg in p + s if "tex" in seg]
            expected[url] = {"expect": "document", "formulas": formulas, "renderer": renderer}
            records.append((url, "response", body, [("Content-Type", "text/html; charset=utf-8")], "200 OK"))
    for name in TRAFILATURA_PAGES:
        raw = (Path(resources) / name).read_bytes()
        if name.endswith(".gz"):
            raw = gzip.decompress(raw)
        url = f"https://trafilatura.example.org/{name.removesuffix('.gz')}"
        expected[url] = {"expect": "document", "page": name}
        records.append((url, "request", b"", [("Host", "trafilatura.example.org")], None))
        records.append((url, "response", raw, [("Content-Type", "text/html")], "200 OK"))
    latin1 = "<html><body><p>Théorème de Pythagore : dans un triangle rectangle, a² + b² = c².</p></body></html>"
    url = "https://latin1.example.fr/pythagore"
    expected[url] = {"expect": "document", "text": "Théorème de Pythagore : dans un triangle rectangle, a² + b² = c²."}
    records.append((url, "response", latin1.encode("latin-1"), [("Content-Type", "text/html; charset=ISO-8859-1")], "200 OK"))
    encoded = "<html><body><p>Chunked and gzip-encoded: $e^{i\\pi}+1=0$.</p></body></html>".encode()
    url = "https://encoded.example.org/euler"
    expected[url] = {"expect": "document", "text": "Chunked and gzip-encoded: $e^{i\\pi}+1=0$."}
    records.append((url, "response", chunked(gzip.compress(encoded)),
                    [("Content-Type", "text/html"), ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")], "200 OK"))
    skips = [
        ("https://mathhelp.example.org/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(64), [("Content-Type", "image/png")], "200 OK", "response image/png"),
        ("https://mathhelp.example.org/notes.pdf", b"%PDF-1.4\n%...", [("Content-Type", "application/pdf")], "200 OK", "response application/pdf"),
        ("https://mathhelp.example.org/old", b"", [("Location", "/new"), ("Content-Type", "text/html")], "301 Moved Permanently", "response status 300"),
        ("https://mathhelp.example.org/missing", b"<p>Not found</p>", [("Content-Type", "text/html")], "404 Not Found", "response status 400"),
    ]
    for url, body, headers, status, why in skips:
        expected[url] = {"expect": why}
        records.append((url, "response", body, headers, status))

    with open(out / "pages.warc.gz", "wb") as f:
        writer = WARCWriter(f, gzip=True)
        writer.write_record(writer.create_warcinfo_record("pages.warc.gz", {"software": "warcio, mathlake fixtures"}))
        for url, kind, body, headers, status in records:
            if kind == "request":
                h = StatusAndHeaders("GET / HTTP/1.1", headers, is_http_request=True)
                writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(body), http_headers=h))
            else:
                h = http(status, headers + [("Content-Length", str(len(body)))])
                record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=h)
                writer.write_record(record)
                if url.endswith("/katex/0"):
                    meta = writer.create_warc_record(url, "metadata", payload=io.BytesIO(b"fetchTimeMs: 12\r\n"),
                                                     warc_content_type="application/warc-fields")
                    writer.write_record(meta)
                    revisit = writer.create_revisit_record(url, digest=record.rec_headers.get_header("WARC-Payload-Digest"),
                                                           refers_to_uri=url, refers_to_date="2026-01-01T00:00:00Z")
                    writer.write_record(revisit)

    manifest = []
    with open(out / "pages.warc.gz", "rb") as f:
        it = ArchiveIterator(f)
        for record in it:
            url = record.rec_headers.get_header("WARC-Target-URI")
            entry = {
                "offset": it.get_record_offset(),
                "type": record.rec_type,
                "url": url,
                "record_id": record.rec_headers.get_header("WARC-Record-ID"),
                "date": record.rec_headers.get_header("WARC-Date"),
            }
            if record.http_headers and record.rec_type == "response":
                entry["status"] = record.http_headers.get_statuscode()
                entry["content_type"] = record.http_headers.get_header("Content-Type")
            if record.rec_type == "response":
                entry.update(expected[url])
            else:
                entry["expect"] = record.rec_type
            record.content_stream().read()
            manifest.append(entry)
    (out / "pages.warc.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")

    import trafilatura
    with open(out / "pages.warc.wet.gz", "wb") as f:
        writer = WARCWriter(f, gzip=True)
        writer.write_record(writer.create_warcinfo_record("pages.warc.wet.gz", {"software": "trafilatura"}))
        for name in TRAFILATURA_PAGES:
            raw = (Path(resources) / name).read_bytes()
            text = trafilatura.extract(gzip.decompress(raw) if name.endswith(".gz") else raw) or ""
            url = f"https://trafilatura.example.org/{name.removesuffix('.gz')}"
            writer.write_record(writer.create_warc_record(url, "conversion", payload=io.BytesIO(text.encode()),
                                                          warc_content_type="text/plain"))
    (out / "webpage.html.gz").write_bytes((Path(resources) / "webpage.html.gz").read_bytes())
    print(f"{len(manifest)} records, {sum(1 for e in manifest if e['expect'] == 'document')} pages")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("resources", help="tests/resources of trafilatura's source distribution")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--math", type=int, default=40, help="MATH test problems rendered")
    parser.add_argument("--gsm8k", type=int, default=10, help="GSM8K test problems rendered")
    args = parser.parse_args()
    main(args.resources, args.out, args.math, args.gsm8k)
