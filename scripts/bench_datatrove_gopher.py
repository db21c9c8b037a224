"""Reference for the curation benchmark: datatrove's Gopher quality filter (PyPI
`datatrove`), one process, on the first N documents of a make_corpus.py JSONL file.
Prints one JSON line: documents, text MB, CPU seconds, MB per CPU-second, kept."""
import json
import sys
import time

from datatrove.data import Document
from datatrove.pipeline.filters import GopherQualityFilter

path, limit = sys.argv[1], int(sys.argv[2])
documents = []
with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f):
        if i >= limit:
            break
        record = json.loads(line)
        documents.append(Document(text=record["text"], id=str(record["id"])))
text_mb = sum(len(d.text.encode("utf-8")) for d in documents) / 1e6
gopher = GopherQualityFilter()
start = time.process_time()
kept = 0
for document in documents:
    verdict = gopher.filter(document)
    kept += bool(verdict[0] if isinstance(verdict, tuple) else verdict)
cpu = time.process_time() - start
print(json.dumps({"documents": len(documents), "text_mb": round(text_mb, 1), "cpu_seconds": round(cpu, 1),
                  "mb_per_cpu_second": round(text_mb / cpu, 3), "kept": kept}))
