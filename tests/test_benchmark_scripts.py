"""Pure functions of the benchmark scripts (the runs themselves are not tests)."""
import importlib.util
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.util import load_config
from spacy.vectors import Vectors

ROOT = Path(__file__).resolve().parent.parent


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_add_cased_keys_points_cased_forms_at_the_row():
    glove = load_script("glove_vectors")
    nlp = spacy.blank("en")
    words = ["paris", "the", "new-york"]
    data = numpy.arange(6, dtype="f").reshape((3, 2))
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=words)
    added = glove.add_cased_keys(nlp.vocab, words)
    # Paris PARIS The THE New-York NEW-YORK (capitalize() of new-york == "New-york")
    assert added == 7
    for form, row in [("Paris", 0), ("PARIS", 0), ("THE", 1), ("New-York", 2), ("New-york", 2)]:
        numpy.testing.assert_array_equal(nlp.vocab.get_vector(form), data[row])
    assert nlp.vocab.vectors.shape == (3, 2)


def test_use_static_vectors_switches_every_setting(tmp_path):
    conll03 = load_script("conll03")
    nlp = spacy.blank("en")
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=numpy.ones((1, 4), "f"), keys=["a"])
    nlp.to_disk(tmp_path / "vectors")
    config = load_config(ROOT / "configs" / "conll03.cfg", interpolate=False)
    assert config["components"]["rnn_ner"]["model"]["tok2vec"]["embed"]["include_static_vectors"] is False
    conll03.use_static_vectors(config, str(tmp_path / "vectors"))
    assert config["components"]["rnn_ner"]["model"]["tok2vec"]["embed"]["include_static_vectors"] is True
    assert config["initialize"]["vectors"] == str(tmp_path / "vectors")
    with pytest.raises(SystemExit, match="no vocab"):
        conll03.use_static_vectors(config, str(tmp_path))
    config = load_config(ROOT / "configs" / "lstm.cfg", interpolate=False)
    config["components"]["rnn_ner"]["model"]["tok2vec"]["embed"].pop("include_static_vectors", None)
    with pytest.raises(SystemExit, match="include_static_vectors"):
        conll03.use_static_vectors(config, str(tmp_path / "vectors"))
