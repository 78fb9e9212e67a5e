"""Shared test setup: the --slow option, a small in-memory NER training set,
and the small trained pipelines of the robustness tests (see robust.py).
Nothing is registered in spaCy's or Thinc's registries here."""
from typing import List, Sequence, Tuple

import pytest
from spacy.tokens import Doc
from spacy.training import Example
from spacy.vocab import Vocab

# (words, BILUO tags): a handful of sentences with PER, ORG and LOC entities.
TRAIN_DATA: List[Tuple[List[str], List[str]]] = [
    (
        ["Ada", "Lovelace", "worked", "with", "Charles", "Babbage", "in", "London", "."],
        ["B-PER", "L-PER", "O", "O", "B-PER", "L-PER", "O", "U-LOC", "O"],
    ),
    (
        ["Acme", "Corp", "opened", "an", "office", "in", "Paris", "."],
        ["B-ORG", "L-ORG", "O", "O", "O", "O", "U-LOC", "O"],
    ),
    (
        ["Grace", "Hopper", "joined", "the", "United", "States", "Navy", "."],
        ["B-PER", "L-PER", "O", "O", "B-ORG", "I-ORG", "L-ORG", "O"],
    ),
    (
        ["Nothing", "happened", "in", "the", "morning", "."],
        ["O", "O", "O", "O", "O", "O"],
    ),
    (
        ["Alan", "visited", "Berlin", "and", "Rome", "for", "Globex", "."],
        ["U-PER", "O", "U-LOC", "O", "U-LOC", "O", "U-ORG", "O"],
    ),
]


def make_example(vocab: Vocab, words: Sequence[str], tags: Sequence[str]) -> Example:
    """An Example over `words` whose reference has the BILUO `tags`; "-"
    marks a token whose annotation is missing."""
    return Example.from_dict(Doc(vocab, words=list(words)), {"entities": list(tags)})


def make_examples(vocab: Vocab, data=TRAIN_DATA) -> List[Example]:
    """The training set as Examples over `vocab`, e.g. `nlp.vocab`."""
    return [make_example(vocab, words, tags) for words, tags in data]


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def pipelines():
    """Per tagger ("softmax", "crf"), a small pipeline trained a little and a
    copy with overwrite_ents, made once per session. Copy before modifying."""
    from .robust import TAGGERS, copy_of, trained_a_little

    made = {}

    def get(tagger: str):
        if tagger not in made:
            nlp = trained_a_little(TAGGERS[tagger])
            made[tagger] = nlp, copy_of(nlp, overwrite_ents=True)
        return made[tagger]

    return get


@pytest.fixture(scope="session")
def nlp(pipelines):
    """The softmax pipeline of `pipelines`."""
    return pipelines("softmax")[0]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    """The bundled corpus built by corpus/build.py into a temporary folder."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("corpus")
    build = Path(__file__).resolve().parent.parent / "corpus" / "build.py"
    subprocess.run([sys.executable, str(build), "--out-dir", str(out)], check=True,
                   capture_output=True)
    return out
