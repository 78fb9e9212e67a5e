"""Pure functions of the benchmark scripts (the runs themselves are not tests)."""
import importlib.util
import json
import re
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


def test_lstm_floor_runs_a_real_lstm():
    """The floor of benchmarks/lstm_floor.py must do an LSTM's work, not less:
    its forward equals a plain numpy LSTM (no bias) on the same weights."""
    from spacy_rnn_ner.layers import cells

    if not cells.kernels_available(numpy, numpy.dtype("float32")):
        pytest.skip("C kernels not built")
    floor = load_script("lstm_floor")
    from spacy_rnn_ner.layers import _cpu_kernels

    nI, nH, T, B = 5, 3, floor.LENGTH, floor.BATCH
    X = numpy.random.RandomState(0).uniform(-1, 1, (T * B, nI)).astype("f")
    runners, dirs = floor.floor_runners(numpy, _cpu_kernels, nI, nH, X)
    fwd, prepare = runners["fwd"]
    fwd(prepare())
    Wx, Wh = dirs[0]["Wx"], dirs[0]["Wh"]
    sig = lambda z: 1 / (1 + numpy.exp(-z))
    h, c = numpy.zeros((B, nH), "f"), numpy.zeros((B, nH), "f")
    for t in range(T):
        z = X[t * B : (t + 1) * B] @ Wx.T + h @ Wh.T
        i, f, o, g = sig(z[:, :nH]), sig(z[:, nH : 2 * nH]), sig(z[:, 2 * nH : 3 * nH]), numpy.tanh(z[:, 3 * nH :])
        c = f * c + i * g
        h = o * numpy.tanh(c)
        numpy.testing.assert_allclose(dirs[0]["H"][t * B : (t + 1) * B], h, atol=1e-5)
    fwdbwd, prepare = runners["fwdbwd"]
    fwdbwd(prepare())  # runs without error on the same buffers
    assert numpy.isfinite(dirs[1]["dG"]).all()


# --- _common.py: helpers shared by the scripts -----------------------------------


def test_common_thread_env_sets_every_thread_variable(monkeypatch):
    common = load_script("_common")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = common.thread_env(2, PYTHONHASHSEED="0")
    assert {env[v] for v in common.THREAD_VARS} == {"2"}
    assert env["SOMETHING_ELSE"] == "kept" and env["PYTHONHASHSEED"] == "0"
    with pytest.raises(ValueError):
        common.thread_vars(0)


def test_common_logger_prefixes_and_picks_the_stream(capsys):
    common = load_script("_common")
    common.logger("conll03", stdout=True)("hello")
    common.logger()("world")
    out, err = capsys.readouterr()
    assert re.fullmatch(r"\[conll03 \d\d:\d\d:\d\d\] hello\n", out)
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] world\n", err)


def test_common_machine_facts_and_versions():
    common = load_script("_common")
    facts = common.machine_facts(("spacy", "no-such-dist-for-sure"))
    assert facts["versions"] == {"spacy": spacy.__version__, "no-such-dist-for-sure": None}
    assert facts["cpu_count"] >= 1 and facts["python"].count(".") == 2
    json.dumps(facts)  # plain JSON


def test_common_json_files_have_no_nan(tmp_path):
    common = load_script("_common")
    common.write_json(tmp_path / "a" / "x.json", {"x": [float("nan"), 1.5], "y": (2,)})
    text = (tmp_path / "a" / "x.json").read_text()
    assert "NaN" not in text
    assert common.read_json(tmp_path / "a" / "x.json") == {"x": [None, 1.5], "y": [2]}
    assert common.repo_path("benchmarks") == ROOT / "benchmarks"
    assert common.show(ROOT / "benchmarks" / "x.py") == "benchmarks/x.py"
    assert common.command_line("conll03.py", ["--configs", "a b.cfg"]) == (
        "python benchmarks/conll03.py --configs 'a b.cfg'")


@pytest.mark.parametrize("name", ["calibration", "speed", "lstm_floor", "glove_vectors"])
def test_scripts_load_with_the_shared_helpers(name):
    module = load_script(name)
    assert module._common.REPO == ROOT
