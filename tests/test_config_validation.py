"""Bad settings are config validation errors that name the setting: spaCy
rejects them before building (types), or the builder raises a
ConfigValidationError (rules over several settings), and `spacy train`
prints them without a traceback."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.util import registry
from thinc.api import Config, ConfigValidationError

from spacy_rnn_ner.config_types import PositiveInt, Rate, StrictBool, Threshold

from .test_registry import EXPECTED

ROOT = Path(__file__).parent.parent
ENCODE = "components.rnn_ner.model.tok2vec.encode"
EMBED = "components.rnn_ner.model.tok2vec.embed"


LAYERS = EXPECTED["thinc_layers"]


def resolve(block: str, **settings) -> object:
    """Build the block `x` of a config, as spaCy builds a component's model."""
    kind = "@layers" if block in LAYERS else "@architectures"
    return registry.resolve(Config({"x": {kind: block, **settings}}))["x"]


@pytest.mark.parametrize(
    "block,settings,setting,words",
    [
        ("spacy-rnn-ner.RNNEncoder.v1", {"cell": "lstmm"}, "cell", "'lstmm'"),
        ("spacy-rnn-ner.RNNEncoder.v1", {"width": 0}, "width", "integer >= 1"),
        ("spacy-rnn-ner.RNNEncoder.v1", {"depth": 0}, "depth", "integer >= 1"),
        ("spacy-rnn-ner.RNNEncoder.v1", {"dropout": -0.1}, "dropout", "[0, 1)"),
        ("spacy-rnn-ner.RNNEncoder.v1", {"bidirectional": 1}, "bidirectional", "true or false"),
        ("spacy-rnn-ner.RNNEncoder.v2", {"dropout": 1.0}, "dropout", "[0, 1)"),
        ("spacy-rnn-ner.RNNEncoder.v2", {"cell": "LSTM"}, "cell", "'LSTM'"),
        ("spacy-rnn-ner.RNN.v1", {"cell": "rnn"}, "cell", "'rnn'"),
        ("spacy-rnn-ner.RNN.v1", {"depth": 1.5}, "depth", "integer >= 1"),
        ("spacy-rnn-ner.CRF.v1", {"nO": 0}, "nO", "integer >= 1"),
        ("spacy-rnn-ner.CharEmbed.v1", {"nC": 0}, "nC", "integer >= 1"),
        ("spacy-rnn-ner.CharCNN.v1", {"window_size": -1}, "window_size", "integer >= 0"),
        ("spacy-rnn-ner.CharCNN.v1", {"max_chars": 1}, "max_chars", "integer >= 2"),
        ("spacy-rnn-ner.TokenDropout.v1", {"rate": 1.0}, "rate", "[0, 1)"),
        ("spacy-rnn-ner.LockedDropout.v1", {"rate": True}, "rate", "[0, 1)"),
        ("spacy-rnn-ner.VocabEmbed.v1", {"nO": 8, "nV": 0}, "nV", "integer >= 1"),
        ("spacy-rnn-ner.VocabEmbed.v1", {"nO": 8, "nV": 5, "unk_rate": -1}, "unk_rate", "[0, 1)"),
        (
            "spacy-rnn-ner.WordCharEmbed.v1",
            {"width": 8, "attrs": ["NORM"], "rows": [10], "word_dropout": 1.5},
            "word_dropout",
            "[0, 1)",
        ),
        (
            "spacy-rnn-ner.WordCharEmbed.v2",
            {"width": 8, "attrs": ["NORM"], "rows": [0]},
            "rows",
            "integer >= 1",
        ),
        (
            "spacy-rnn-ner.CharMultiHashEmbed.v1",
            {"width": 8, "attrs": ["NORM"], "rows": [10], "nM": -2},
            "nM",
            "integer >= 1",
        ),
    ],
)
def test_bad_type_is_validation_error(block, settings, setting, words):
    with pytest.raises(ConfigValidationError) as info:
        resolve(block, **settings)
    text = str(info.value)
    # confection 0.1 (pydantic) adds the index of a bad list item.
    assert re.search(rf"x -> {setting}( -> \d+)?\t", text), text
    assert words in text


@pytest.mark.parametrize(
    "block,settings,setting,words",
    [
        ("spacy-rnn-ner.RNNEncoder.v1", {"width": 97}, "width", "must be even with bidirectional"),
        ("spacy-rnn-ner.RNNEncoder.v2", {"width": 97}, "width", "must be even with bidirectional"),
        ("spacy-rnn-ner.RNN.v1", {"nO": 5}, "nO", "multiple of the number of directions"),
        (
            "spacy-rnn-ner.WordCharEmbed.v1",
            {"width": 8, "attrs": ["NORM", "SHAPE"], "rows": [10]},
            "rows",
            "one rows entry per attribute",
        ),
        (
            "spacy-rnn-ner.WordCharEmbed.v2",
            {"width": 8, "attrs": [], "rows": []},
            "attrs",
            "attrs is empty",
        ),
        (
            "spacy-rnn-ner.CharMultiHashEmbed.v1",
            {"width": 8, "attrs": ["NORM", "SHAPE"], "rows": [10, 10, 10]},
            "rows",
            "one rows entry per attribute",
        ),
    ],
)
def test_bad_combination_is_validation_error(block, settings, setting, words):
    with pytest.raises(ConfigValidationError) as info:
        resolve(block, **settings)
    text = str(info.value)
    assert f"{block} -> {setting}\t" in text
    assert words in text


def test_odd_width_without_bidirectional_builds():
    model = resolve("spacy-rnn-ner.RNNEncoder.v1", width=97, bidirectional=False)
    assert model.get_dim("nO") == 97


@pytest.mark.parametrize(
    "config,setting",
    [
        ({"temperature": 0}, "temperature"),
        ({"threshold": 1.5}, "threshold"),
        ({"overwrite_ents": "yes"}, "overwrite_ents"),
    ],
)
def test_bad_factory_setting(config, setting):
    with pytest.raises(ConfigValidationError, match=f"rnn_ner -> {setting}\t"):
        spacy.blank("en").add_pipe("rnn_ner", config=config)


@pytest.mark.parametrize(
    "kind,good,bad",
    [
        (PositiveInt, [1, 300], [0, -1, 1.0, True, "2", None]),
        (Rate, [0, 0.0, 0.5, 0.999], [-0.1, 1, 1.0, False, "0.1", None]),
        (Threshold, [1, 1.0, 0.01], [0, 0.0, 1.01, True]),
        (StrictBool, [True, False], [0, 1, "true", None]),
    ],
)
def test_constrained_types(kind, good, bad):
    for value in good:
        assert kind.validate(value) == value
    for value in bad:
        with pytest.raises(ValueError, match="is not"):
            kind.validate(value)


def test_shipped_configs_validate():
    for path in sorted((ROOT / "configs").glob("*.cfg")):
        config = spacy.util.load_config(path)
        spacy.util.load_model_from_config(config, auto_fill=True, validate=True)




def spacy_train(corpus_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / "lstm.cfg"),
        "--paths.train", str(corpus_dir / "train.spacy"),
        "--paths.dev", str(corpus_dir / "dev.spacy"),
        "--training.max_steps", "1",
        *overrides,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


# Each fails before any training (about 1.5 s a run); the first two are the
# type error and the rule over two settings, the rest run with --slow.
TRAIN_MISTAKES = [
    pytest.param((f"--{ENCODE}.cell", "lstmm"), "rnn_ner.model.tok2vec.encode -> cell", id="cell"),
    pytest.param(
        (f"--{ENCODE}.width", "97"), "spacy-rnn-ner.RNNEncoder.v1 -> width", id="odd-width"
    ),
    pytest.param(
        (f"--{ENCODE}.dropout", "-0.1"),
        "rnn_ner.model.tok2vec.encode -> dropout",
        id="negative-dropout",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        (f"--{EMBED}.rows", "[5000,1000,2500]"),
        "spacy-rnn-ner.WordCharEmbed.v1 -> rows",
        id="rows-shorter-than-attrs",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        (f"--{ENCODE}.depth", "0"),
        "rnn_ner.model.tok2vec.encode -> depth",
        id="depth-0",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        (f"--{ENCODE}.width", "0"),
        "rnn_ner.model.tok2vec.encode -> width",
        id="width-0",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("override,where", TRAIN_MISTAKES)
def test_spacy_train_reports_bad_setting(corpus_dir, override, where):
    result = spacy_train(corpus_dir, *override)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "✘ Config" in output
    assert where + "\t" in output
