"""Helpers for the annotate tests: a tiny trained pipeline on disk and input
files with good and malformed rows."""
import json
from pathlib import Path
from typing import List

import spacy
from thinc.api import Adam, fix_random_seed

from .conftest import make_examples

TINY = {"model": {"tok2vec": {"embed": {"width": 16}, "encode": {"width": 16}}}}
TEXTS = [
    "Ada Lovelace worked with Charles Babbage in London .",
    "Grace Hopper opened an office in Paris .",
    "",
    "Nothing happened in the morning .",
    "Alan visited Berlin and Rome for Globex .",
    "Acme Corp hired Grace in Paris .",
]


def train_tiny_pipeline(path: Path) -> Path:
    """Train an rnn_ner pipeline with width 16 on the conftest examples for
    30 updates (about a second) and save it to `path`."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=TINY)
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


def good_rows(n: int) -> List[dict]:
    return [{"id": f"doc{i}", "text": TEXTS[i % len(TEXTS)] + f" {i}"} for i in range(n)]


def write_jsonl_with_bad_rows(path: Path, n_good: int) -> List[str]:
    """A JSONL file of `n_good` good rows with malformed rows between them;
    RETURNS the ids every output must hold, in input order."""
    lines = [json.dumps(row) for row in good_rows(n_good)]
    bad = [
        ("{not json", "line:{n}"),
        (json.dumps({"id": "no-text"}), "no-text"),
        (json.dumps({"id": "int-text", "text": 42}), "int-text"),
        (json.dumps({"id": "huge", "text": "Paris " * 400}), "huge"),  # > max_chars=1000
        (json.dumps(["a", "list"]), "line:{n}"),
    ]
    ids = [row["id"] for row in good_rows(n_good)]
    for k, (line, row_id) in enumerate(bad):
        at = (k + 1) * len(lines) // (len(bad) + 1)
        lines.insert(at, line)
        ids.insert(at, row_id)
    with open(path, "w", encoding="utf8") as f:
        for line in lines:
            f.write(line + "\n")
    return [row_id.format(n=n) for n, row_id in enumerate(ids, 1)]


def assert_same_records(got, want, rel: float = 1e-4) -> None:
    """Records are equal, their probabilities to `rel`: the BLAS products
    of a batch may round differently from those of one doc alone (seen on
    CPUs without AVX-512), so the last digits of a probability can depend
    on the other docs of the batch; the entities may not."""
    import pytest

    got, want = list(got), list(want)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        _assert_close(a, b, rel, pytest.approx)


def _assert_close(a, b, rel, approx) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), (a, b)
        for key in a:
            _assert_close(a[key], b[key], rel, approx)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            _assert_close(x, y, rel, approx)
    elif isinstance(a, float) and isinstance(b, float):
        assert a == approx(b, rel=rel, abs=1e-7)
    else:
        assert a == b
