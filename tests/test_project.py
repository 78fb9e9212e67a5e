"""benchmarks/project.yml (the weasel template for IOB files) and the
IOB export its example-data step uses."""
import importlib.util
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training.converters import conll_ner_to_docs
from weasel.util import load_project_config

ROOT = Path(__file__).resolve().parents[1]


def load_export_iob():
    spec = importlib.util.spec_from_file_location("export_iob", ROOT / "benchmarks" / "export_iob.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_project_validates_and_chains():
    config = load_project_config(ROOT / "benchmarks")  # raises on schema errors
    commands = {c["name"]: c for c in config["commands"]}
    assert set(config["workflows"]["all"]) <= set(commands)
    assert {a["dest"] for a in config["assets"]} == {
        "assets/train.iob", "assets/dev.iob", "assets/test.iob"
    }
    # Each step's deps are an asset, a tracked file, or an earlier step's output.
    made = {a["dest"] for a in config["assets"]}
    for name in config["workflows"]["all"]:
        for dep in commands[name]["deps"]:
            assert dep in made or (ROOT / "benchmarks" / dep).exists(), (name, dep)
        made.update(commands[name].get("outputs", []))
    scripts = " ".join(s for c in commands.values() for s in c["script"])
    for tool in ("spacy convert", "spacy train", "spacy evaluate", "spacy benchmark speed"):
        assert f"python -m {tool}" in scripts
    # Only the measurement is never skipped (steps without outputs, like
    # debug-data, run every time anyway).
    assert [n for n, c in commands.items() if c.get("no_skip")] == ["speed"]


def test_export_iob_round_trips_through_spacy_convert(tmp_path):
    vocab = spacy.blank("en").vocab
    a = Doc(vocab, words=["Ana", "Ruiz", "visited", "New", "York", "."])
    a.ents = [Span(a, 0, 2, "PER"), Span(a, 3, 5, "LOC")]
    b = Doc(vocab, words=["Nothing", "here"])
    b.ents = []
    DocBin(docs=[a, b]).to_disk(tmp_path / "x.spacy")
    assert load_export_iob().export(tmp_path / "x.spacy", tmp_path / "x.iob") == 2
    docs = list(conll_ner_to_docs((tmp_path / "x.iob").read_text(), n_sents=1, no_print=True))
    assert [[t.text for t in d] for d in docs] == [[t.text for t in d] for d in (a, b)]
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in docs] == [
        [(0, 2, "PER"), (3, 5, "LOC")], []
    ]
