"""Reference for the curation benchmark: datatrove's filters that compute what
sql/curate_documents.sql computes (Gopher quality and repetition, C4 quality, FineWeb
quality), one process, on the first N documents of a make_corpus.py JSONL file. Each filter
sees every document (none is dropped before the next runs), as our single pass does.

datatrove's language filter is left out: its fastText model is fetched from a model hub,
which this machine cannot reach. Prints one JSON line: documents, text MB, and per filter
and in all, CPU seconds and MB per CPU-second."""
import json
import sys
import time

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

path, limit = sys.argv[1], int(sys.argv[2])
texts = []
with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f):
        if i >= limit:
            break
        texts.append(json.loads(line)["text"])
text_mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
filters = {
    "gopher_quality": GopherQualityFilter(),
    "gopher_repetition": GopherRepetitionFilter(),
    # Without its line rule on terminal punctuation, which rewrites the text: curation only
    # measures that rule (punct_line_fraction) and cuts on the fraction.
    "c4_quality": C4QualityFilter(filter_no_terminal_punct=False),
    "fineweb_quality": FineWebQualityFilter(),
}
report = {"documents": len(texts), "text_mb": round(text_mb, 1), "filters": {}}
total = 0.0
for name, f in filters.items():
    # A fresh Document per filter: C4's filter rewrites the text it keeps.
    documents = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    start = time.process_time()
    kept = 0
    for document in documents:
        verdict = f.filter(document)
        kept += bool(verdict[0] if isinstance(verdict, tuple) else verdict)
    cpu = time.process_time() - start
    total += cpu
    report["filters"][name] = {"cpu_seconds": round(cpu, 2), "mb_per_cpu_second": round(text_mb / cpu, 3), "kept": kept}
report["all"] = {"cpu_seconds": round(total, 2), "mb_per_cpu_second": round(text_mb / total, 3)}
print(json.dumps(report))
