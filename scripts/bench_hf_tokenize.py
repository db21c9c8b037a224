"""Reference for the tokenize benchmark, end to end: a lake table's text column read with
pyarrow, encoded by Hugging Face tokenizers' batch encoder (the Python package, on
`threads` threads), EOS appended, and written as one Parquet file of (id, tokens) with
zstd, in batches of 1,024 documents, as `mathlake tokenize` does.

    python3 scripts/bench_hf_tokenize.py LAKE TABLE TOKENIZER_JSON THREADS

Prints one line in the form of scripts/bench_shards.sh's."""
import json
import os
import sys

path, table, tokenizer_path, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
os.environ["RAYON_NUM_THREADS"] = os.environ["RAYON_RS_NUM_CPUS"] = str(threads)

import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

pa.set_cpu_count(threads)
log = os.path.join(path, table, "_log")
version = json.load(open(os.path.join(log, max(os.listdir(log)))))
files = [os.path.join(path, table, f["path"]) for f in version["files"]]
tokenizer = Tokenizer.from_file(tokenizer_path)
eos = tokenizer.token_to_id("<|endoftext|>")
encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
schema = pa.schema([("id", pa.string()), ("tokens", pa.list_(pa.uint32()))])


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


start_wall, start_cpu = time.perf_counter(), cpu_seconds()
text_bytes = tokens = 0
with tempfile.TemporaryDirectory() as out:
    with pq.ParquetWriter(os.path.join(out, "tokens.parquet"), schema, compression="zstd", compression_level=1) as w:
        for name in files:
            for batch in pq.ParquetFile(name).iter_batches(batch_size=1024, columns=["id", "text"]):
                texts = batch.column("text").to_pylist()
                text_bytes += sum(len(t.encode("utf-8")) for t in texts)
                ids = [e.ids + [eos] for e in encode(texts, add_special_tokens=False)]
                tokens += sum(len(i) for i in ids)
                w.write_batch(pa.record_batch([batch.column("id"), pa.array(ids, type=pa.list_(pa.uint32()))], schema=schema))
    wall, cpu = time.perf_counter() - start_wall, cpu_seconds() - start_cpu
mb = text_bytes / 1e6
print(f"  HF tokenizers encode_batch + pyarrow write, {threads} thread(s): {mb / wall:.2f} MB/s "
      f"({cpu:.1f} CPU-s, {mb / cpu:.2f} MB per CPU-s; {tokens:,} tokens)")
