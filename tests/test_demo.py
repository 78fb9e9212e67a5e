"""The first impression: README command 1 trains configs/lstm.cfg on the
bundled corpus; the model must generalise to the hand-written evaluation set
(corpus/handwritten.txt), not only to the synthetic dev set."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example

ROOT = Path(__file__).parent.parent
CORPUS = ROOT / "corpus"
SHOWCASE = (
    "Vincent Vega met Jules Winnfield in Lisbon on Monday, and Reuters reported "
    "that Acme Holdings will sponsor the World Cup in Brazil."
)
# The showcase's entities: the default model (seed 0) must find exactly these.
# Seeds 0, 1 and 2 all did (benchmarks/results/demo.md).
SHOWCASE_ENTITIES = {
    ("Vincent Vega", "PER"), ("Jules Winnfield", "PER"), ("Lisbon", "LOC"), ("Reuters", "ORG"),
    ("Acme Holdings", "ORG"), ("World Cup", "MISC"), ("Brazil", "LOC"),
}
# Measured 0.799, 0.802, 0.808 (seeds 0, 1, 2; benchmarks/results/demo.md;
# 0.790, 0.797, 0.761 with the corpus before its fifth round, when the floor
# was 0.72): a margin below the lowest, so that the test guards against
# regressions without failing on a machine whose float rounding differs (two
# trainings of the same seed differed by up to 0.03 on half the set).
MIN_HANDWRITTEN_F = 0.75


def _sentences(name: str) -> list:
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_handwritten_set_is_separate_from_training():
    """>= 150 sentences, all four labels, none of them in train or dev, and
    the showcase sentence's own names never occur in the training text."""
    sys.path.insert(0, str(CORPUS))
    try:
        from build import read_docs
    finally:
        sys.path.pop(0)
    nlp = spacy.blank("en")
    docs = read_docs(nlp, CORPUS / "handwritten.txt")
    assert len(docs) >= 150
    assert {e.label_ for d in docs for e in d.ents} == {"PER", "ORG", "LOC", "MISC"}
    train_text = {d.text for split in ("train.txt", "dev.txt") for d in read_docs(nlp, CORPUS / split)}
    assert not train_text & {d.text for d in docs}
    train_words = {t.text for line in _sentences("train.txt") for t in nlp.make_doc(line)}
    for word in ("Vincent", "Vega", "Jules", "Winnfield", "Acme"):
        assert word not in train_words, word


def test_generator_name_lists_avoid_the_handwritten_set():
    """The word lists added to make_corpus.py for #17's third round (names
    that are English words, trades, club nicknames, ministry topics) share no
    word, in any case, with corpus/handwritten.txt."""
    sys.path.insert(0, str(CORPUS))
    try:
        import make_corpus
    finally:
        sys.path.pop(0)
    words = {w.lower() for w in re.findall(r"[\w'-]+", (CORPUS / "handwritten.txt").read_text(encoding="utf-8"))}
    lists = {name: getattr(make_corpus, name) for name in
             ("WORD_GIVEN", "WORD_SURNAMES", "TRADES", "CLUB_NICKNAMES", "MINISTRY_TOPICS")}
    for name, entries in lists.items():
        assert entries, name
        shared = sorted(e for e in entries if any(w.lower() in words for w in e.split()))
        assert not shared, (name, shared)


def test_show_entities_sample_is_the_showcase():
    text = (ROOT / "scripts" / "show_entities.py").read_text(encoding="utf-8")
    assert '"Vincent Vega met Jules Winnfield in Lisbon on Monday, and Reuters reported "' in text


@pytest.mark.slow
def test_default_model_generalises(tmp_path):
    """README command 1's training, then F on the hand-written set and the
    showcase sentence's entities."""
    subprocess.run(
        [sys.executable, str(CORPUS / "build.py"), "--out-dir", str(tmp_path)],
        check=True, capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / "lstm.cfg"),
         "--output", str(tmp_path / "out"),
         "--paths.train", str(tmp_path / "train.spacy"),
         "--paths.dev", str(tmp_path / "dev.spacy")],
        check=True, capture_output=True, cwd=tmp_path,
    )
    nlp = spacy.load(tmp_path / "out" / "model-best")
    gold = list(DocBin().from_disk(tmp_path / "handwritten.spacy").get_docs(nlp.vocab))
    examples = [Example(nlp.make_doc(g.text), g) for g in gold]
    scores = nlp.evaluate(examples)
    assert scores["ents_f"] >= MIN_HANDWRITTEN_F, scores["ents_per_type"]
    doc = nlp(SHOWCASE)
    assert {(e.text, e.label_) for e in doc.ents} == SHOWCASE_ENTITIES
    # One 200,000-token doc through this pipeline, in a fresh process: at most
    # 1 KB per token beyond the doc itself (it runs in pieces, batching.py).
    out = subprocess.run(
        [sys.executable, "-c", LONG_DOC_SCRIPT, str(tmp_path / "out" / "model-best"),
         str(tmp_path / "handwritten.spacy")],
        check=True, capture_output=True, text=True, timeout=600,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("200,000-token doc:", result)
    assert result["n_ents"] > 0 and result["bytes_per_token"] <= 1024, result


LONG_DOC_SCRIPT = """
import json, sys, tracemalloc
import spacy
from spacy.tokens import Doc, DocBin

nlp = spacy.load(sys.argv[1])
words = [t.text for d in DocBin().from_disk(sys.argv[2]).get_docs(nlp.vocab) for t in d]
words = (words * (200000 // len(words) + 1))[:200000]
nlp("Warm up .")
doc = Doc(nlp.vocab, words=words)
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
nlp(doc)
peak = tracemalloc.get_traced_memory()[1] - base
print(json.dumps({"bytes_per_token": round(peak / len(words)), "n_ents": len(doc.ents)}))
"""
