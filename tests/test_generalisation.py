"""benchmarks/generalisation.py: seen/unseen counting, the WNUT-17 reader and
label mapping, the refusal of test data, and end-to-end runs on small pipelines."""
import importlib.util
import json
import math
from pathlib import Path

import pytest
import spacy
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"model": {"tok2vec": {"embed": {"width": 16}, "encode": {"width": 16}}}}

# "Paris" and "Acme Corp" are seen; the dev docs' PARIS (case), Acme Corp (as
# MISC: any label) and Paris are seen mentions, Jules Winnfield and Vincent not.
TRAIN = (["Paris", "and", "Acme", "Corp", "."], ["B-LOC", "O", "B-ORG", "I-ORG", "O"])
DEV = [
    (["PARIS", "hired", "Jules", "Winnfield", "from", "Acme", "Corp", "."],
     ["B-LOC", "O", "B-PER", "I-PER", "O", "B-MISC", "I-MISC", "O"]),
    (["Vincent", "left", "Paris"], ["B-PER", "O", "B-LOC"]),
]
# Separators: a lone tab, spaces, two empty lines; a BOM in a token; no final newline.
WNUT = ("Dubbz\ufeff\tB-person\nis\tO\n\t\nNew\tB-location\nYork\tI-location\nFC\tB-group\n   \n"
        "I\tO\nlove\tO\niPhone\tB-product\nX\tI-product\n\n\nApple\tB-corporation\nrocks\tO")


def load_script():
    spec = importlib.util.spec_from_file_location("generalisation", ROOT / "benchmarks" / "generalisation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_script()


def docs(vocab, data):
    return [Doc(vocab, words=words, ents=tags) for words, tags in data]


def test_seen_unseen_counts_each_mention_by_its_own_text(script):
    vocab = spacy.blank("en").vocab
    seen = script.seen_texts(docs(vocab, [TRAIN]))
    assert seen == {"paris", "acme corp"}
    golds = docs(vocab, DEV)
    # PARIS right (seen), Jules alone (unseen, wrong boundary), Acme Corp as ORG
    # (seen, wrong label); Vincent right (unseen), "left" LOC (unseen), Paris right (seen).
    preds = docs(vocab, [
        (DEV[0][0], ["B-LOC", "O", "B-PER", "O", "O", "B-ORG", "I-ORG", "O"]),
        (DEV[1][0], ["B-PER", "B-LOC", "B-LOC"]),
    ])
    split = script.seen_unseen(golds, preds, seen)
    assert {k: split["seen"][k] for k in ("gold", "pred", "tp")} == {"gold": 3, "pred": 3, "tp": 2}
    assert {k: split["unseen"][k] for k in ("gold", "pred", "tp")} == {"gold": 2, "pred": 3, "tp": 1}
    assert split["seen"]["p"] == split["seen"]["r"] == split["seen"]["f"] == pytest.approx(2 / 3)
    assert (split["unseen"]["p"], split["unseen"]["r"]) == (pytest.approx(1 / 3), 0.5)
    assert split["unseen"]["f"] == pytest.approx(0.4)
    # The two parts add up to spaCy's own counts: P 3/6, R 3/5.
    overall = get_ner_prf([Example(p, g) for p, g in zip(preds, golds)])
    assert (overall["ents_p"], overall["ents_r"]) == (pytest.approx(0.5), pytest.approx(0.6))
    none = script.seen_unseen(golds, docs(vocab, [(w, ["O"] * len(w)) for w, _ in DEV]), seen)
    assert math.isnan(none["seen"]["p"]) and none["seen"]["r"] == 0.0 and none["seen"]["f"] == 0.0
    with pytest.raises(ValueError, match="tokens differ"):
        script.seen_unseen(golds[:1], golds[1:], seen)


def test_predict_gives_the_input_the_gold_sentence_starts(script):
    """CoNLL's sentence-level protocol: with `sents`, the pipeline sees the gold
    sentence starts; without, or where the gold has none, it sees none."""
    class Echo:
        vocab = spacy.blank("en").vocab

        def pipe(self, docs, batch_size):
            return list(docs)

    def starts(doc):
        return [bool(t.is_sent_start) for t in doc] if doc.has_annotation("SENT_START") else None

    gold = Doc(Echo.vocab, words=["Damien", ".", "Flemming", "won"], sent_starts=[True, False, True, False],
               ents=["B-PER", "O", "B-PER", "O"])
    bare = Doc(Echo.vocab, words=["Damien", "Flemming"])
    with_sents = script.predict(Echo(), [gold, bare])
    assert [starts(d) for d in with_sents] == [[True, False, True, False], None]
    assert [t.text for t in with_sents[0]] == ["Damien", ".", "Flemming", "won"]
    assert not with_sents[0].ents
    assert starts(script.predict(Echo(), [gold], sents=False)[0]) is None


def test_iob_spans_follow_conlleval(script):
    assert script.iob_spans(["B-person", "I-person", "B-person", "O", "B-group", "I-location"]) == [
        (0, 2, "person"), (2, 3, "person"), (4, 5, "group"), (5, 6, "location")]
    # IOB1: I- starts an entity after O or another type.
    assert script.iob_spans(["I-PER", "I-PER", "B-PER", "I-LOC", "O", "I-LOC"]) == [
        (0, 2, "PER"), (2, 3, "PER"), (3, 4, "LOC"), (5, 6, "LOC")]
    assert script.iob_spans(["O", "O"]) == [] and script.iob_spans([]) == []
    for bad in ("X-PER", "B", "B-"):
        with pytest.raises(ValueError, match="not an IOB tag"):
            script.iob_spans([bad])
    assert script.map_spans([(0, 1, "person"), (1, 2, "product"), (2, 4, "group"),
                             (4, 5, "creative-work"), (5, 6, "corporation"), (6, 7, "location")]) == [
        (0, 1, "PER"), (2, 4, "ORG"), (5, 6, "ORG"), (6, 7, "LOC")]


def test_wnut_reader_maps_and_drops_labels(script, tmp_path):
    path = tmp_path / "dev.conll"
    path.write_text(WNUT, encoding="utf8")
    sents = script.read_conll2(path)
    assert [words for words, _ in sents] == [
        ["Dubbz", "is"], ["New", "York", "FC"], ["I", "love", "iPhone", "X"], ["Apple", "rocks"]]
    assert sents[2][1] == ["O", "O", "B-product", "I-product"]
    golds, counts = script.wnut_docs(path, spacy.blank("en").vocab)
    assert [[(e.text, e.label_) for e in d.ents] for d in golds] == [
        [("Dubbz", "PER")], [("New York", "LOC"), ("FC", "ORG")], [], [("Apple", "ORG")]]
    # The dropped product is annotated O, so predictions on it count.
    assert golds[2].has_annotation("ENT_IOB") and {t.ent_iob_ for t in golds[2]} == {"O"}
    assert counts == {"corporation": 1, "group": 1, "location": 1, "person": 1, "product": 1}
    preds = [Doc(golds[1].vocab, words=["a", "b", "c"], ents=["B-MISC", "O", "B-PER"])]
    assert script.keep_labels(preds) == 1 and [e.label_ for e in preds[0].ents] == ["PER"]
    (tmp_path / "bad.conll").write_text("token without a tab\n", encoding="utf8")
    with pytest.raises(ValueError, match="bad.conll:1"):
        script.read_conll2(tmp_path / "bad.conll")


def write_data(tmp_path, vocab):
    DocBin(docs=docs(vocab, [TRAIN])).to_disk(tmp_path / "train.spacy")
    DocBin(docs=docs(vocab, DEV)).to_disk(tmp_path / "dev.spacy")
    (tmp_path / "wnut").mkdir()
    (tmp_path / "wnut" / "dev.conll").write_text(WNUT, encoding="utf8")


def tiny_rnn_ner(data):
    """An rnn_ner pipeline trained for 5 updates on `data`."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=SMALL)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in gold]), gold)
                for gold in docs(nlp.vocab, data)]
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_end_to_end_on_a_ruler_and_a_tiny_rnn_ner(script, tmp_path):
    ruler = spacy.blank("en")
    ruler.add_pipe("entity_ruler").add_patterns([
        {"label": "PER", "pattern": "Vincent"}, {"label": "LOC", "pattern": "Paris"},
        {"label": "ORG", "pattern": "Apple"}, {"label": "PER", "pattern": "iPhone"},
        {"label": "MISC", "pattern": "Dubbz"}])
    ruler.to_disk(tmp_path / "ruler")
    tiny_rnn_ner([TRAIN, *DEV]).to_disk(tmp_path / "rnn")
    write_data(tmp_path, ruler.vocab)
    out = tmp_path / "report"
    common = ["--conll", str(tmp_path / "dev.spacy"), "--train", str(tmp_path / "train.spacy"),
              "--wnut", str(tmp_path / "wnut"), "--out", str(out)]
    script.main(["--models", f"ruler={tmp_path / 'ruler'}", f"rnn={tmp_path / 'rnn'}", *common])
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["conll"]["gold_seen"] == 3 and report["conll"]["gold_unseen"] == 2
    assert report["wnut"]["docs"] == 4 and report["wnut"]["gold"]["product"] == 1
    ruler_result, rnn = report["models"]
    # CoNLL: Paris (seen) and Vincent (unseen) found, nothing else.
    c = ruler_result["conll"]
    assert (c["p"], c["r"], c["f"]) == (1.0, pytest.approx(0.4), pytest.approx(4 / 7))
    assert (c["seen"]["r"], c["seen"]["f"], c["unseen"]["r"]) == (pytest.approx(1 / 3), 0.5, 0.5)
    # WNUT: Apple right, iPhone PER on a dropped product is wrong, Dubbz MISC dropped;
    # 4 gold mentions kept (Dubbz, New York, FC, Apple).
    w = ruler_result["wnut"]
    assert (w["p"], w["r"], w["f"], w["dropped_pred"]) == (0.5, 0.25, pytest.approx(1 / 3), 1)
    assert w["per_type"]["PER"]["f"] == 0.0 and w["per_type"]["ORG"]["r"] == 0.5
    # The trained rnn_ner: its seen and unseen parts add up to the overall figures.
    c = rnn["conll"]
    assert c["seen"]["gold"] + c["unseen"]["gold"] == 5
    tp, pred = c["seen"]["tp"] + c["unseen"]["tp"], c["seen"]["pred"] + c["unseen"]["pred"]
    assert c["p"] == pytest.approx(tp / pred if pred else 0.0) and c["r"] == pytest.approx(tp / 5)
    assert rnn["pipeline"] == ["rnn_ner"] and "wnut" in rnn
    md = out.with_suffix(".md").read_text()
    assert "| ruler | 57.14 | 50.00 | 66.67 | 50.00 | 50.00 | 25.00 | 33.33 | 0.00 | 0.00 | 66.67 |" in md
    assert "product 1" in md and "predicted MISC is dropped" in md
    # No WNUT folder: skipped, with a message.
    script.main(["--models", f"ruler={tmp_path / 'ruler'}", *common[:4], "--wnut",
                 str(tmp_path / "none"), "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert "not found" in report["wnut_skipped"] and "wnut" not in report["models"][0]
    assert "WNUT-17: skipped" in out.with_suffix(".md").read_text()


def test_test_data_needs_allow_test(script, tmp_path):
    vocab = spacy.blank("en").vocab
    write_data(tmp_path, vocab)
    (tmp_path / "dev.spacy").rename(tmp_path / "test.spacy")
    (tmp_path / "wnut" / "dev.conll").rename(tmp_path / "wnut" / "test.conll")
    spacy.blank("en").to_disk(tmp_path / "blank")
    args = ["--models", f"blank={tmp_path / 'blank'}", "--train", str(tmp_path / "train.spacy"),
            "--wnut", str(tmp_path / "wnut"), "--out", str(tmp_path / "report")]
    with pytest.raises(SystemExit, match="test data"):
        script.main([*args, "--conll", str(tmp_path / "test.spacy")])
    (tmp_path / "test.spacy").rename(tmp_path / "dev.spacy")
    with pytest.raises(SystemExit, match="test data"):
        script.main([*args, "--conll", str(tmp_path / "dev.spacy"), "--wnut-split", "test"])
    script.main([*args, "--conll", str(tmp_path / "dev.spacy"), "--wnut-split", "test", "--allow-test"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["wnut"]["split"] == "test" and report["models"][0]["conll"]["r"] == 0.0
