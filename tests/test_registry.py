"""Every entry point resolves to the function its registry decorator registered."""
from importlib.metadata import entry_points

import pytest
import spacy
from spacy.util import registry

GROUPS = {
    "spacy_architectures": "architectures",
    "thinc_layers": "layers",
    "spacy_scorers": "scorers",
    "spacy_readers": "readers",
}
EXPECTED = {
    "spacy_factories": {"rnn_ner"},
    "spacy_architectures": {
        "spacy-rnn-ner.RNNEncoder.v1",
        "spacy-rnn-ner.RNNEncoder.v2",
        "spacy-rnn-ner.RNNTagger.v1",
        "spacy-rnn-ner.RNNCRFTagger.v1",
        "spacy-rnn-ner.CharMultiHashEmbed.v1",
        "spacy-rnn-ner.WordCharEmbed.v1",
        "spacy-rnn-ner.WordCharEmbed.v2",
        "spacy-rnn-ner.EnsembleCRFTagger.v1",
    },
    "thinc_layers": {
        "spacy-rnn-ner.RNN.v1",
        "spacy-rnn-ner.CRF.v1",
        "spacy-rnn-ner.CharEmbed.v1",
        "spacy-rnn-ner.CharCNN.v1",
        "spacy-rnn-ner.TokenDropout.v1",
        "spacy-rnn-ner.VocabEmbed.v1",
        "spacy-rnn-ner.LockedDropout.v1",
        "spacy-rnn-ner.with_padded_buckets.v1",
    },
    "spacy_scorers": {"spacy-rnn-ner.span_scorer.v1"},
    "spacy_readers": {"spacy-rnn-ner.PlainTextCorpus.v1", "spacy-rnn-ner.ConcatCorpus.v1"},
}


def _ours(group):
    return {ep.name: ep for ep in entry_points(group=group) if ep.value.startswith("spacy_rnn_ner.")}


@pytest.mark.parametrize("group", sorted(EXPECTED))
def test_entry_points_declared(group):
    assert set(_ours(group)) == EXPECTED[group]


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_entry_points_match_decorators(group):
    for name, ep in _ours(group).items():
        assert name.startswith("spacy-rnn-ner.") and name.rsplit(".", 1)[-1].startswith("v")
        assert getattr(registry, GROUPS[group]).get(name) is ep.load()


def test_factory_entry_point():
    (ep,) = _ours("spacy_factories").values()
    factory = ep.load()
    meta = spacy.Language.get_factory_meta("rnn_ner")
    assert meta.factory == "rnn_ner"
    assert spacy.registry.factories.get("rnn_ner") is factory


def test_add_pipe_without_import():
    """spaCy finds the factory through the entry point alone."""
    import subprocess
    import sys

    code = "import spacy; nlp = spacy.blank('en'); nlp.add_pipe('rnn_ner'); print(nlp.pipe_names)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "rnn_ner" in out.stdout
