"""Memory follows the tokens: docs are padded in length buckets, with the same
results as unbucketed, one-by-one prediction and training."""
import json
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy
import pytest
import spacy
from numpy.testing import assert_allclose
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_rnn_ner import batching
from spacy_rnn_ner.batching import begin_update_bucketed, length_buckets, piece_bounds
from spacy_rnn_ner.pipeline import DEFAULT_RNN_NER_MODEL

from .conftest import make_examples

WORDS = ["Ada", "went", "to", "Paris", "with", "Acme", "Corp", ".", "the", "morning"]


def make_nlp(crf: bool = False):
    fix_random_seed(0)
    model = {**DEFAULT_RNN_NER_MODEL, "tok2vec": {**DEFAULT_RNN_NER_MODEL["tok2vec"]}}
    model["tok2vec"]["embed"] = {**model["tok2vec"]["embed"], "width": 16}
    model["tok2vec"]["encode"] = {**model["tok2vec"]["encode"], "width": 16}
    if crf:
        model["@architectures"] = "spacy-rnn-ner.RNNCRFTagger.v1"
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"model": model, "threshold": 0.2})
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    return nlp


def make_shared_nlp(crf: bool = False):
    """A `tok2vec` component (hash embeddings + `RNNEncoder.v1`) that runs on
    the whole batch, and `rnn_ner` listening to it."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    tok2vec = {**DEFAULT_RNN_NER_MODEL["tok2vec"]}
    tok2vec["embed"] = {**tok2vec["embed"], "width": 16}
    tok2vec["encode"] = {**tok2vec["encode"], "width": 16}
    nlp.add_pipe("tok2vec", config={"model": tok2vec})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 16, "upstream": "*"}
    model = {**DEFAULT_RNN_NER_MODEL, "tok2vec": listener}
    if crf:
        model["@architectures"] = "spacy-rnn-ner.RNNCRFTagger.v1"
    nlp.add_pipe("rnn_ner", config={"model": model, "threshold": 0.2})
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    return nlp


def mixed_docs(vocab, long_len: int, n_short: int = 199, seed: int = 0):
    """One long doc among short ones (and an empty one), in random order."""
    rng = random.Random(seed)
    lengths = [long_len, 0] + [rng.randint(5, 40) for _ in range(n_short)]
    rng.shuffle(lengths)
    return [Doc(vocab, words=[rng.choice(WORDS) for _ in range(n)]) for n in lengths]


def test_length_buckets_bound_padding():
    rng = random.Random(1)
    for _ in range(50):
        lengths = [rng.choice([0, rng.randint(1, 30), rng.randint(1, 3000)]) for _ in range(60)]
        buckets = length_buckets(lengths, max_padded=4000, max_padding=500)
        flat = sorted(i for bucket in buckets for i in bucket)
        assert flat == [i for i, n in enumerate(lengths) if n]
        for bucket in buckets:
            sizes = [lengths[i] for i in bucket]
            assert sizes == sorted(sizes, reverse=True)
            padded, real = sizes[0] * len(sizes), sum(sizes)
            assert len(bucket) == 1 or padded <= 4000
            assert padded - real <= max(real, 500)


def test_length_buckets_keep_similar_lengths_together():
    # The common case, a batch of sentences, is one bucket.
    assert length_buckets([12, 30, 7, 25, 18]) == [[1, 3, 4, 0, 2]]
    # A long doc pads at most as many short docs as make up its own length.
    assert length_buckets([20, 10_000, 20, 20]) == [[1, 0], [2, 3]]
    assert length_buckets([20, 10_000, 20, 20], max_padded=10_000) == [[1], [0, 2, 3]]


def test_piece_bounds_tile_the_doc_with_context():
    for n in (1, 99, 100, 101, 1000):
        bounds = piece_bounds(n, max_tokens=100, margin=10)
        assert [c for _, _, c, _ in bounds] == list(range(0, n, 80))
        assert bounds[-1][3] == n
        for start, end, core_start, core_end in bounds:
            assert end - start <= 100 and start <= core_start < core_end <= end
            assert core_start - start == min(10, core_start)
            assert end - core_end == min(10, n - core_end)
    with pytest.raises(ValueError, match="twice the margin"):
        piece_bounds(10, max_tokens=20, margin=10)


@pytest.mark.parametrize("crf", [False, True])
def test_long_doc_is_predicted_in_overlapping_pieces(crf, monkeypatch):
    """A doc longer than SPLIT_ABOVE_TOKENS gets, for each core, the scores of
    its window predicted as a doc of its own; shorter docs are predicted
    whole, as before; the annotations are valid either way."""
    nlp = make_nlp(crf)
    ner = nlp.get_pipe("rnn_ner")
    rng = random.Random(3)
    words = [rng.choice(WORDS) for _ in range(230)]
    doc = Doc(nlp.vocab, words=words, sent_starts=[i % 23 == 0 for i in range(230)])
    short = Doc(nlp.vocab, words=words[:50])
    whole_short = ner.model.predict([short])[0]
    monkeypatch.setattr(batching, "SPLIT_ABOVE_TOKENS", 60)
    monkeypatch.setattr(batching, "MAX_PIECE_TOKENS", 60)
    monkeypatch.setattr(batching, "PIECE_MARGIN", 10)
    scores, short_scores = ner.predict([doc, short])
    assert_allclose(short_scores, whole_short, rtol=1e-5, atol=1e-6)
    assert scores.shape == (230, len(ner.tags))
    for start, end, core_start, core_end in piece_bounds(230):
        window = Doc(nlp.vocab, words=words[start:end],
                     sent_starts=[bool(t.is_sent_start) for t in doc[start:end]])
        (expected,) = ner.model.predict([window])
        assert_allclose(scores[core_start:core_end], expected[core_start - start : core_end - start],
                        rtol=1e-5, atol=1e-6)
    ner.set_annotations([doc], [scores])
    for ent in doc.ents:  # inside sentences, as for any doc with sentence starts
        assert not any(t.is_sent_start for t in ent[1:])


@pytest.mark.parametrize("crf", [False, True])
def test_mixed_batch_equals_one_by_one(crf):
    nlp = make_nlp(crf)
    ner = nlp.get_pipe("rnn_ner")
    docs = mixed_docs(nlp.vocab, long_len=3000, n_short=60)
    batched = ner.predict(docs)
    for doc, scores in zip(docs, batched):
        (alone,) = ner.predict([doc])
        assert scores.shape == (len(doc), len(ner.tags))
        assert_allclose(scores, alone, rtol=1e-5, atol=1e-6)
    piped = list(nlp.pipe([Doc(nlp.vocab, words=[t.text for t in d]) for d in docs]))
    for doc_b in piped:
        doc_1 = nlp(Doc(nlp.vocab, words=[t.text for t in doc_b]))
        assert [(e.start, e.end, e.label_) for e in doc_b.ents] == [
            (e.start, e.end, e.label_) for e in doc_1.ents
        ]
        group_b, group_1 = doc_b.spans["rnn_ner"], doc_1.spans["rnn_ner"]
        assert [(s.start, s.end, s.label_) for s in group_b] == [
            (s.start, s.end, s.label_) for s in group_1
        ]
        assert_allclose(group_b.attrs["scores"], group_1.attrs["scores"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("crf", [False, True])
def test_bucketed_training_gradients_equal_unbucketed(crf):
    nlp = make_nlp(crf)
    ner = nlp.get_pipe("rnn_ner")
    docs = mixed_docs(nlp.vocab, long_len=2000, n_short=30)
    examples = [Example.from_dict(doc, {"entities": ["O"] * len(doc)}) for doc in docs]

    def grads(begin_update):
        scores, backprop = begin_update(docs)
        _, d_scores = ner.get_loss(examples, scores)
        backprop(d_scores)
        found = {}
        for node in ner.model.walk():
            for name in node.grad_names:
                found[(node.id, name)] = node.get_grad(name).copy()
                node.get_grad(name).fill(0)
        return found

    whole = grads(lambda d: ner.model.begin_update(d))
    bucketed = grads(lambda d: begin_update_bucketed(ner.model, d, len(ner.tags)))
    assert whole.keys() == bucketed.keys() and whole
    for key in whole:
        assert_allclose(bucketed[key], whole[key], rtol=1e-4, atol=1e-5)


def traced_peak(func) -> int:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("crf", [False, True])
def test_memory_follows_tokens_in_prediction(crf):
    # Unbucketed, the batch padded every doc to 3,000 tokens: ~30x the peak
    # of the long doc alone.
    nlp = make_nlp(crf)
    docs = mixed_docs(nlp.vocab, long_len=3000, n_short=120)
    list(nlp.pipe(docs[:2]))  # warm up
    one_by_one = max(traced_peak(lambda: nlp(doc)) for doc in docs if len(doc) >= 3000)
    batched = traced_peak(lambda: list(nlp.pipe(docs, batch_size=1000)))
    assert batched < 3 * one_by_one, (batched, one_by_one)


def test_memory_follows_tokens_under_shared_tok2vec():
    # The tok2vec component runs the encoder on the whole batch: unbucketed,
    # padding every doc to 5,000 tokens took ~40x the peak of the long doc
    # alone (191 vs 4.6 MiB traced; 8 MiB bucketed).
    nlp = make_shared_nlp()
    assert nlp.get_pipe("rnn_ner").model.get_ref("tok2vec").name == "tok2vec-listener"
    docs = mixed_docs(nlp.vocab, long_len=5000)
    list(nlp.pipe(docs[:2]))  # warm up
    one_by_one = max(traced_peak(lambda: nlp(doc)) for doc in docs if len(doc) >= 5000)
    batched = traced_peak(lambda: list(nlp.pipe(docs, batch_size=1000)))
    assert batched < 3 * one_by_one, (batched, one_by_one)
    piped = list(nlp.pipe([Doc(nlp.vocab, words=[t.text for t in d]) for d in docs]))
    # Same as one by one: the long doc, the empty one and every 10th.
    for i, doc_b in enumerate(piped):
        if i % 10 and len(doc_b) not in (0, 5000):
            continue
        doc_1 = nlp(Doc(nlp.vocab, words=[t.text for t in doc_b]))
        assert_allclose(doc_b.tensor, doc_1.tensor, rtol=1e-5, atol=1e-6)
        group_b, group_1 = doc_b.spans["rnn_ner"], doc_1.spans["rnn_ner"]
        assert [(s.start, s.end, s.label_) for s in group_b] == [
            (s.start, s.end, s.label_) for s in group_1
        ]
        assert_allclose(group_b.attrs["scores"], group_1.attrs["scores"], rtol=1e-5, atol=1e-6)


def test_memory_follows_tokens_in_training():
    nlp = make_nlp()
    docs = mixed_docs(nlp.vocab, long_len=5000)
    examples = [Example.from_dict(doc, {"entities": ["O"] * len(doc)}) for doc in docs]
    long_only = [eg for eg in examples if len(eg.predicted) >= 5000]
    n_tokens = sum(len(doc) for doc in docs)
    alone = traced_peak(lambda: nlp.update(long_only))
    together = traced_peak(lambda: nlp.update(examples))
    # Activations grow with the tokens (about twice those of the long doc).
    assert together < 3 * alone * n_tokens / 5000, (together, alone)


def test_memory_follows_tokens_in_training_under_shared_tok2vec():
    # Unbucketed: 267 MiB for the batch against 13 MiB for the long doc alone
    # (bucketed: 27 MiB; 27.5 MiB with the CRF tagger).
    nlp = make_shared_nlp()
    docs = mixed_docs(nlp.vocab, long_len=5000)
    examples = [Example.from_dict(doc, {"entities": ["O"] * len(doc)}) for doc in docs]
    long_only = [eg for eg in examples if len(eg.predicted) >= 5000]
    n_tokens = sum(len(doc) for doc in docs)
    alone = traced_peak(lambda: nlp.update(long_only))
    together = traced_peak(lambda: nlp.update(examples))
    assert together < 3 * alone * n_tokens / 5000, (together, alone)


REPO = Path(__file__).resolve().parent.parent
MEMORY_SCRIPT = """
import json, resource, time, tracemalloc
import spacy
from spacy.tokens import Doc
from spacy.training import Example

nlp = spacy.blank("en")
nlp.add_pipe("rnn_ner")  # the default model: width 96, LSTM
text = "Ada Lovelace lives in London ."
eg = Example.from_dict(nlp.make_doc(text), {"entities": [(0, 12, "PER"), (22, 28, "LOC")]})
nlp.initialize(lambda: [eg])
nlp(text)
words = (text.split() + ["Grace", "Hopper", "joined", "the", "Navy", "."]) * 2000
words = words[:20000]

def run():
    doc = nlp(Doc(nlp.vocab, words=words))
    assert len(doc) == 20000
    return len(doc.ents)

def status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

try:
    # Reset the peak RSS (VmHWM) to the current RSS, so that the peak of the
    # run is measured, not the one of loading and initializing.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    method = "VmHWM after clear_refs"
    before = status_kb("VmRSS")
except OSError:
    method = "ru_maxrss"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
n_ents = run()
seconds = time.perf_counter() - start
after = status_kb("VmHWM") if method != "ru_maxrss" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
run()
_, traced_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({
    "rss_before_mb": round(before / 1024, 1),
    "peak_rss_growth_mb": round((after - before) / 1024, 1),
    "rss_method": method,
    "traced_peak_mb": round(traced_peak / 2**20, 1),
    "seconds": round(seconds, 2),
    "n_ents": n_ents,
}))
"""


@pytest.mark.slow  # ~15 s: a fresh process and two passes over the doc
def test_memory_of_20000_token_doc_is_bounded():
    """Peak memory of one 20,000-token doc with the default model, in a fresh
    process: the peak RSS during the run over the RSS before it, and the
    tracemalloc peak of a second run (Python and numpy allocations)."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("20,000-token doc:", result)
    assert result["peak_rss_growth_mb"] < 500, result
    assert result["traced_peak_mb"] < 500, result
