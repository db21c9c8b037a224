"""Reference for the dedup benchmark: datatrove's MinHash dedup (PyPI `datatrove`) with
FineWeb's settings (5-grams, 14 buckets x 8 hashes), one worker, on the first N documents
of a make_corpus.py JSONL file: signatures, buckets, clusters, then the filter that writes
the kept documents. Prints one JSON line with CPU seconds per step and MB per CPU-second."""
import json
import os
import resource
import shutil
import sys
import tempfile
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

path, limit = os.path.abspath(sys.argv[1]), int(sys.argv[2])
work = tempfile.mkdtemp(prefix="datatrove-minhash-")
text_bytes = 0
with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f):
        if i >= limit:
            break
        text_bytes += len(json.loads(line)["text"].encode("utf-8"))
config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)


def reader():
    return JsonlReader(os.path.dirname(path), glob_pattern=os.path.basename(path), limit=limit, id_key="id")


def cpu():
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


steps = {
    "signatures": ([reader(), MinhashDedupSignature(output_folder=f"{work}/sigs", config=config)], 1),
    "buckets": ([MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=config)],
                config.num_buckets),
    "clusters": ([MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove", config=config)], 1),
    "filter": ([reader(), MinhashDedupFilter(input_folder=f"{work}/remove"), JsonlWriter(f"{work}/out")], 1),
}
seconds = {}
for name, (pipeline, tasks) in steps.items():
    start = cpu()
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{work}/logs/{name}").run()
    seconds[name] = round(cpu() - start, 1)
total = sum(seconds.values())
kept = 0
for root, _, files in os.walk(f"{work}/out"):
    for name in files:
        import gzip
        opener = gzip.open if name.endswith(".gz") else open
        with opener(os.path.join(root, name), "rt", encoding="utf-8") as f:
            kept += sum(1 for _ in f)
shutil.rmtree(work)
mb = text_bytes / 1e6
print(json.dumps({"documents": limit, "text_mb": round(mb, 1), "cpu_seconds": seconds, "kept": kept,
                  "signature_mb_per_cpu_second": round(mb / seconds["signatures"], 3),
                  "total_mb_per_cpu_second": round(mb / total, 3)}))
