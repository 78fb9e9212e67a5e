from pathlib import Path

import numpy
import pytest
import spacy
import srsly
from numpy.testing import assert_allclose
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training.iob_utils import doc_to_biluo_tags
from thinc.api import Adam, fix_random_seed

from .conftest import TRAIN_DATA, make_examples

SMALL = {"model": {"tok2vec": {"embed": {"width": 16}, "encode": {"width": 16}}}}
TEXTS = [
    "Ada Lovelace worked with Charles Babbage in London .",
    "Grace Hopper opened an office in Paris .",
    "",
    "Nothing happened .",
]


@pytest.fixture(scope="module")
def trained_nlp() -> Language:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner")
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(50):
        nlp.update(examples, sgd=optimizer)
    return nlp


def entities(nlp):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in map(nlp, TEXTS)]


def scores(nlp):
    return nlp.get_pipe("rnn_ner").predict([nlp.make_doc(text) for text in TEXTS])


def assert_same_predictions(nlp, nlp2):
    assert nlp2.get_pipe("rnn_ner").labels == nlp.get_pipe("rnn_ner").labels
    assert entities(nlp2) == entities(nlp)
    for a, b in zip(scores(nlp), scores(nlp2)):
        assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_trained_model_learned(trained_nlp):
    for words, tags in TRAIN_DATA:
        assert doc_to_biluo_tags(trained_nlp(Doc(trained_nlp.vocab, words=words))) == tags


def test_to_disk_load(trained_nlp, tmp_path):
    trained_nlp.to_disk(tmp_path)
    assert_same_predictions(trained_nlp, spacy.load(tmp_path))


def test_to_bytes_from_bytes(trained_nlp):
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("rnn_ner")
    nlp2.from_bytes(trained_nlp.to_bytes())
    assert_same_predictions(trained_nlp, nlp2)


def test_pipe_matches_call(trained_nlp):
    by_pipe = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in trained_nlp.pipe(TEXTS, batch_size=2)]
    assert by_pipe == entities(trained_nlp)
    assert by_pipe == [[(e.start, e.end, e.label_) for e in doc.ents] for doc in trained_nlp.pipe(TEXTS)]


def test_component_bytes_into_initialized_component(trained_nlp):
    """Loading replaces the labels first, so an output layer of another width
    (here: initialized with one label) takes the saved weights."""
    nlp2 = spacy.blank("en")
    ner2 = nlp2.add_pipe("rnn_ner")
    ner2.initialize(lambda: make_examples(nlp2.vocab), labels=["PER"])
    assert ner2.model.get_ref("output_layer").get_dim("nO") == 5
    ner2.from_bytes(trained_nlp.get_pipe("rnn_ner").to_bytes())
    assert_same_predictions(trained_nlp, nlp2)


def test_add_label_after_training_survives_io(trained_nlp, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner")
    nlp.from_bytes(trained_nlp.to_bytes())
    nlp.get_pipe("rnn_ner").add_label("MISC")
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    assert nlp2.get_pipe("rnn_ner").labels == ("LOC", "MISC", "ORG", "PER")
    assert_same_predictions(nlp, nlp2)


@pytest.mark.parametrize("with_labels", [False, True])
def test_io_before_initialization(tmp_path, with_labels):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("rnn_ner", config=SMALL)
    if with_labels:
        ner.add_label("PER")
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    ner2 = nlp2.get_pipe("rnn_ner")
    assert ner2.labels == ner.labels
    nlp3 = spacy.blank("en")
    nlp3.add_pipe("rnn_ner", config=SMALL).from_bytes(ner.to_bytes())
    assert nlp3.get_pipe("rnn_ner").labels == ner.labels
    # Both can still be initialized and run.
    for loaded in (nlp2, nlp3):
        loaded.initialize(lambda: make_examples(loaded.vocab))
        assert loaded.get_pipe("rnn_ner").labels == ("LOC", "ORG", "PER")
        loaded("Ada Lovelace lived in London.")


def _is_pickle(data: bytes) -> bool:
    # Pickle protocols 2-5 start with the PROTO opcode and the protocol number.
    return data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5


def _values(obj):
    """Every leaf of a decoded msgpack structure."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield from _values(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _values(value)
    else:
        yield obj


def test_saved_directory_has_no_pickle(trained_nlp, tmp_path):
    trained_nlp.to_disk(tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert path.suffix not in (".pkl", ".pickle"), path
        assert not _is_pickle(path.read_bytes()), path
    component = tmp_path / "rnn_ner"
    assert srsly.read_json(component / "cfg") == {"labels": ["LOC", "ORG", "PER"]}
    # The model is msgpack whose arrays are raw buffers, with nothing pickled inside.
    model = srsly.msgpack_loads((component / "model").read_bytes())
    assert set(model) >= {"nodes", "params"}
    for value in _values(model):
        if isinstance(value, bytes):
            assert not _is_pickle(value)
        elif isinstance(value, numpy.ndarray):
            assert value.dtype != object


@pytest.mark.parametrize("corrupt", ["truncate", "garbage"])
def test_corrupted_model_file(trained_nlp, tmp_path, corrupt):
    trained_nlp.to_disk(tmp_path)
    model_file = Path(tmp_path) / "rnn_ner" / "model"
    data = model_file.read_bytes()
    if corrupt == "truncate":
        model_file.write_bytes(data[: len(data) // 2])
    else:
        model_file.write_bytes(numpy.random.RandomState(0).bytes(1000))
    with pytest.raises(ValueError, match="Could not load the model of component 'rnn_ner'"):
        spacy.load(tmp_path)


def test_model_saved_without_labels_attr_still_loads(trained_nlp):
    """Models saved before the labels were stored with the weights load as
    before; newer ones carry them (checked against cfg at load)."""
    from spacy_rnn_ner.serialize import LABELS_ATTR

    msg = srsly.msgpack_loads(trained_nlp.get_pipe("rnn_ner").to_bytes())
    model_msg = srsly.msgpack_loads(msg["model"])
    assert srsly.msgpack_loads(model_msg["attrs"][0][LABELS_ATTR]) == '["LOC","ORG","PER"]'
    del model_msg["attrs"][0][LABELS_ATTR]
    msg["model"] = srsly.msgpack_dumps(model_msg)
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("rnn_ner").from_bytes(srsly.msgpack_dumps(msg))
    assert entities(nlp2) == entities(trained_nlp)
