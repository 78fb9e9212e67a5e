"""`python -m spacy_rnn_ner debug-data` and `displacy`: the stand-ins for
`spacy debug data` and `spacy evaluate --displacy-path`, which skip rnn_ner."""
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

from spacy_rnn_ner.__main__ import COMMANDS, main
from spacy_rnn_ner.cli.debug_data import debug_data_cli
from spacy_rnn_ner.cli.render import displacy_cli
from spacy_rnn_ner.data_check import EntityStats, entity_stats, label_problems

ROOT = Path(__file__).resolve().parents[1]


def train_docs(vocab):
    ada = Doc(vocab, words=["Ada", "Lovelace", "lives", "in", "London", "."])
    ada.ents = [Span(ada, 0, 2, "PER"), Span(ada, 4, 5, "LOC")]
    partial = Doc(vocab, words=["Grace", "Hopper", "met", "Alan", "."])
    partial.set_ents([Span(partial, 0, 2, "PER")], missing=[partial[3:4]], default="outside")
    # The tokenizer makes "NewYork" one token: the gold entity "New" cuts it.
    cut = Doc(vocab, words=["I", "like", "New", "York"], spaces=[True, True, False, False])
    cut.ents = [Span(cut, 2, 3, "LOC")]
    ws = Doc(vocab, words=["Go", "\n", "Paris", "now"])
    ws.ents = [Span(ws, 1, 3, "LOC")]
    unannotated = Doc(vocab, words=["Nothing", "here"])
    return [ada, partial, cut, ws, unannotated]


def test_entity_stats():
    nlp = spacy.blank("en")
    examples = [Example(nlp.make_doc(d.text), d) for d in train_docs(nlp.vocab)]
    stats = entity_stats(examples)
    assert stats.docs == 5 and stats.unannotated_docs == 1
    assert stats.labels == {"PER": 2, "LOC": 3}
    assert stats.missing_tokens == 1
    assert stats.misaligned_ents == 1  # "New" of "NewYork"
    assert stats.whitespace_edge_ents == 1 and stats.whitespace_inner_ents == 0


def test_label_problems():
    train = EntityStats(labels={"PER": 100, "LOC": 3})
    dev = EntityStats(labels={"PER": 10, "MISC": 1})
    problems = label_problems(train, dev, ["PER", "ORG"])
    assert problems == {
        "dev_not_train": ["MISC"],
        "low_count": ["LOC"],
        "new_to_model": ["LOC"],
        "model_not_in_train": ["ORG"],
    }
    assert label_problems(train, dev, [])["new_to_model"] == []


@pytest.fixture
def corpus(tmp_path):
    vocab = spacy.blank("en").vocab
    DocBin(docs=train_docs(vocab)).to_disk(tmp_path / "train.spacy")
    dev = Doc(vocab, words=["Windows", "crashed", "."])
    dev.ents = [Span(dev, 0, 1, "MISC")]
    DocBin(docs=[dev]).to_disk(tmp_path / "dev.spacy")
    return tmp_path


def test_debug_data_cli(corpus, capsys):
    rc = debug_data_cli([str(ROOT / "configs" / "lstm.cfg"),
                         "--paths.train", str(corpus / "train.spacy"),
                         "--paths.dev", str(corpus / "dev.spacy")])
    out = capsys.readouterr().out
    assert rc == 1  # the whitespace entity is an error
    assert "labels: LOC 3, PER 2" in out
    assert "1 tokens with missing annotation" in out
    assert "1 entities whose boundaries the tokenizer does not match" in out
    assert "1 entities starting or ending on whitespace" in out
    assert "warning: labels in dev but not in train: MISC" in out


def test_debug_data_cli_errors(tmp_path, capsys):
    assert debug_data_cli([str(tmp_path / "missing.cfg")]) == 1
    assert debug_data_cli([str(ROOT / "configs" / "lstm.cfg"), "--paths.train",
                           str(tmp_path / "missing.spacy")]) == 1
    assert "could not load" in capsys.readouterr().err


def test_displacy_cli(corpus, tmp_path, capsys):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("rnn_ner")
    for label in ("LOC", "PER"):
        ner.add_label(label)
    nlp.initialize()  # untrained: the HTML holds the texts, whatever it predicts
    nlp.to_disk(tmp_path / "model")
    out = tmp_path / "html"
    assert displacy_cli([str(tmp_path / "model"), str(corpus / "train.spacy"), str(out),
                         "--limit", "2"]) == 0
    for name in ("entities.html", "spans-rnn_ner.html"):
        html = (out / name).read_text()
        assert html.startswith("<!DOCTYPE html>") and "Lovelace" in html and "Hopper" in html
    assert displacy_cli([str(tmp_path / "model"), str(tmp_path / "no.spacy"), str(out)]) == 1


def test_dispatch():
    assert set(COMMANDS) == {"annotate", "calibrate", "debug-data", "displacy", "distill", "ensemble"}
    assert main([]) == 2 and main(["--help"]) == 0
