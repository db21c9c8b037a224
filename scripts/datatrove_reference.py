"""datatrove's Gopher repetition values on the real pages of ../shared/data, the reference
`quality_signals` is checked against (src/text/signals.rs, test
`repetition_follows_datatrove_on_real_pages`). Writes one JSON line per non-empty page:
the file, the line, datatrove's duplicate 5- to 10-gram character fractions
(`find_all_duplicate`) and its top 2- to 4-gram fractions (`find_top_duplicate`), each
over len(text) as its GopherRepetitionFilter divides, on the words of its English word
tokenizer. Needs `pip install datatrove==0.10.1 spacy`.

    python3 scripts/datatrove_reference.py > tests/data/datatrove_repetition.jsonl
"""
import gzip
import json
import os

from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams
from datatrove.utils.text import split_into_words

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
PAGES = [
    ("general/cc_sample_697.jsonl.gz", lambda record: record["text"]),
    ("web/stackmathqa_987.jsonl", lambda record: record["Q"] + "\n\n" + record["A"]),
]

for name, text_of in PAGES:
    path = os.path.join(DATA, name)
    with (gzip.open(path, "rt", encoding="utf-8") if name.endswith(".gz") else open(path, encoding="utf-8")) as f:
        for line, raw in enumerate(f):
            text = text_of(json.loads(raw))
            if not text:
                continue
            words = split_into_words(text)
            dup = [find_all_duplicate(words, n) / len(text) for n in range(5, 11)]
            top = []
            for n in (2, 3, 4):
                grams = get_n_grams(words, n)
                top.append(find_top_duplicate(grams) / len(text) if grams else 0.0)
            print(json.dumps({"file": name, "line": line, "dup_ngram": [round(x, 6) for x in dup],
                              "top_ngram": [round(x, 6) for x in top]}))
