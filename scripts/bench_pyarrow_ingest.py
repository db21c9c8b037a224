"""Reference for the ingest benchmark: pyarrow's JSON reader into one Parquet file (zstd,
the codec our lake uses), on the same make_corpus.py JSONL file and thread count. It only
parses and writes: no normalization, content ids, duplicates or quarantine. Prints one line
in the form of scripts/bench_ingest.sh's."""
import json
import os
import resource
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

path, threads = sys.argv[1], int(sys.argv[2])
pa.set_cpu_count(threads)
pa.set_io_thread_count(threads)
text_mb = json.load(open(path + ".manifest.json"))["text_bytes"] / 1e6


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


start_wall, start_cpu = time.perf_counter(), cpu_seconds()
table = pj.read_json(path, read_options=pj.ReadOptions(use_threads=threads > 1, block_size=16 << 20))
with tempfile.TemporaryDirectory() as out:
    pq.write_table(table, os.path.join(out, "documents.parquet"), compression="zstd", compression_level=1)
    wall, cpu = time.perf_counter() - start_wall, cpu_seconds() - start_cpu
print(f"  pyarrow read_json + write_table, {threads} thread(s): {wall:.1f} s wall, {text_mb / wall:.1f} MB/s, "
      f"{text_mb / cpu:.1f} MB/s per CPU-second; {table.num_rows} rows")
