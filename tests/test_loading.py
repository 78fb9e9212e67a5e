"""Hardened loading (serialize.py): damaged or hostile model directories and
bytes, models of other configs or labels, non-finite weights fail with an
error naming the component; no pickle, no code from the model directory."""
import pickle
import shutil
from pathlib import Path

import numpy
import pytest
import spacy
import srsly

from .conftest import make_examples
from .robust import SMALL, copy_of, ent_tuples, small_config


@pytest.fixture(scope="module")
def saved(nlp, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("saved") / "model"
    nlp.to_disk(path)
    return path


def damaged_copy(saved: Path, tmp_path: Path) -> Path:
    path = tmp_path / "model"
    shutil.copytree(saved, path)
    return path


@pytest.mark.parametrize(
    "damage,match",
    [
        ("delete model", r"'rnn_ner'.*rnn_ner/model"),
        ("delete cfg", r"'rnn_ner'.*rnn_ner/cfg"),
        ("delete component", r"'rnn_ner'.*rnn_ner/cfg"),
        ("empty model", r"'rnn_ner'.*rnn_ner/model"),
        ("truncate cfg", r"'rnn_ner'.*rnn_ner/cfg"),
        ("cfg not a dict", r"'rnn_ner'.*rnn_ner/cfg"),
        ("cfg labels not strings", r"'rnn_ner'.*rnn_ner/cfg"),
        ("cfg has other labels", r"'rnn_ner'.*rnn_ner/model"),
        ("cfg labels renamed", r"'rnn_ner'.*rnn_ner/model.*trained with the labels"),
    ],
)
def test_damaged_directory_raises_clear_error(saved, tmp_path, damage, match):
    path = damaged_copy(saved, tmp_path)
    component = path / "rnn_ner"
    if damage == "delete model":
        (component / "model").unlink()
    elif damage == "delete cfg":
        (component / "cfg").unlink()
    elif damage == "delete component":
        shutil.rmtree(component)
    elif damage == "empty model":
        (component / "model").write_bytes(b"")
    elif damage == "truncate cfg":
        data = (component / "cfg").read_bytes()
        (component / "cfg").write_bytes(data[: len(data) // 2])
    elif damage == "cfg not a dict":
        (component / "cfg").write_text('["LOC", "ORG", "PER"]')
    elif damage == "cfg labels not strings":
        (component / "cfg").write_text('{"labels": ["LOC", 3, null]}')
    elif damage == "cfg has other labels":
        # The output layer in the model file has 13 rows, the cfg asks for 9.
        (component / "cfg").write_text('{"labels": ["LOC", "PER"]}')
    elif damage == "cfg labels renamed":
        # Same count, so the same 13 rows: it would load and relabel PER.
        (component / "cfg").write_text('{"labels": ["LOC", "ORG", "PERSON"]}')
    with pytest.raises((ValueError, OSError), match=match):
        spacy.load(path)


def test_renamed_labels_in_bytes_raise(nlp):
    msg = srsly.msgpack_loads(nlp.get_pipe("rnn_ner").to_bytes())
    msg["cfg"] = srsly.json_dumps({"labels": ["LOC", "ORG", "PERSON"]}).encode("utf8")
    fresh = spacy.blank("en").add_pipe("rnn_ner", config=SMALL)
    with pytest.raises(ValueError, match=r"'rnn_ner'.*bytes.*\['LOC', 'ORG', 'PER'\].*PERSON"):
        fresh.from_bytes(srsly.msgpack_dumps(msg))


@pytest.mark.parametrize("value", [numpy.nan, numpy.inf])
def test_non_finite_weight_fails_at_load(nlp, tmp_path, value):
    nlp2 = copy_of(nlp)
    layer = nlp2.get_pipe("rnn_ner").model.get_ref("output_layer")
    W = layer.get_param("W").copy()
    W[1, 2] = value
    layer.set_param("W", W)
    nlp2.to_disk(tmp_path / "model")
    match = r"Could not load component 'rnn_ner' from .*parameter 'W' of layer 'softmax' has [01] NaN and [01] inf"
    with pytest.raises(ValueError, match=match):
        spacy.load(tmp_path / "model")
    fresh = spacy.blank("en").add_pipe("rnn_ner", config=SMALL)
    with pytest.raises(ValueError, match=match.replace(" from .*", " from bytes.*")):
        fresh.from_bytes(nlp2.get_pipe("rnn_ner").to_bytes())


@pytest.mark.parametrize(
    "other_config,match",
    [
        ({"width": 24}, "nO"),
        ({"cell": "gru"}, "cell|bh_0"),
        ({"cell": "elman"}, "cell"),
        ({"bidirectional": False}, "bidirectional"),
        ({"depth": 2}, "depth|_1_"),
        ({"crf": True}, "structure"),
    ],
)
def test_model_saved_by_other_config_raises(saved, tmp_path, other_config, match):
    """A model file from a differently configured component must not load:
    thinc's `from_bytes` takes the saved attrs as they are, so a saved GRU
    would otherwise silently run in place of the configured LSTM."""
    other = spacy.blank("en")
    other.add_pipe("rnn_ner", config=small_config(**other_config))
    other.initialize(lambda: make_examples(other.vocab))
    other.get_pipe("rnn_ner").to_disk(tmp_path / "other")
    path = damaged_copy(saved, tmp_path)
    shutil.copy(tmp_path / "other" / "model", path / "rnn_ner" / "model")
    with pytest.raises(ValueError, match=r"Could not load the model of component 'rnn_ner'.*rnn_ner/model") as err:
        spacy.load(path)
    assert err.match(match)


def test_bytes_have_no_pickle(nlp):
    """test_serialize scans the saved directory; this scans `to_bytes`, down
    through the nested msgpack of the pipeline, component and model."""
    data = nlp.to_bytes()
    component = srsly.msgpack_loads(data)["rnn_ner"]  # without the vocab
    standalone = nlp.get_pipe("rnn_ner").to_bytes()  # with it
    model = srsly.msgpack_loads(component)["model"]
    for blob in (data, component, standalone, model):
        assert not _is_pickle(blob)
        for value in _leaves(srsly.msgpack_loads(blob)):
            if isinstance(value, bytes):
                assert not _is_pickle(value)
            elif isinstance(value, numpy.ndarray):
                assert value.dtype != object


def _is_pickle(data: bytes) -> bool:
    return data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5


def _leaves(obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield from _leaves(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _leaves(value)
    else:
        yield obj


class _Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _object_array_model(model: bytes, payload: bytes) -> bytes:
    """The model file with its first param replaced by an object array holding
    a pickle, in msgpack-numpy's encoding (pickle-based decoders unpickle it)."""
    msg = srsly.msgpack_loads(model)
    params = next(p for p in msg["params"] if p)
    name = next(iter(params))
    params[name] = {b"nd": True, b"type": "|O", b"kind": b"O", b"shape": [1], b"data": payload}
    return srsly.msgpack_dumps(msg)


@pytest.mark.parametrize("where", ["extra files", "model", "cfg", "object array"])
def test_loading_runs_no_code_from_the_model_dir(nlp, saved, tmp_path, where):
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Payload(marker), protocol=4)
    pickle.loads(payload)  # the payload is live ...
    assert marker.exists()
    marker.unlink()
    path = damaged_copy(saved, tmp_path)
    component = path / "rnn_ner"
    code = f"open({str(marker)!r}, 'w').write('pwned')\n"
    if where == "extra files":
        for py in (path / "__init__.py", component / "__init__.py", component / "model.py"):
            py.write_text(code)
        for pkl in (component / "model.pkl", component / "model.pickle", path / "nlp.pkl"):
            pkl.write_bytes(payload)
        text = "Ada Lovelace lives in London ."
        assert ent_tuples(spacy.load(path)(text)) == ent_tuples(nlp(text))
    else:
        target, data = {
            "model": ("model", payload),
            "cfg": ("cfg", payload),
            "object array": ("model", _object_array_model((component / "model").read_bytes(), payload)),
        }[where]
        (component / target).write_bytes(data)
        with pytest.raises(ValueError, match=rf"'rnn_ner'.*rnn_ner/{target}"):
            spacy.load(path)
    assert not marker.exists()  # ... but loading never unpickled it
