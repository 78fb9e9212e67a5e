"""Temperature fitting: spacy_rnn_ner.calibration and `python -m spacy_rnn_ner calibrate`."""
import math
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from thinc.api import fix_random_seed

from spacy_rnn_ner.__main__ import main
from spacy_rnn_ner.calibration import (
    fit_temperature,
    minimise_log_t,
    set_temperature,
    temperature_search,
)
from spacy_rnn_ner.cli.calibrate import calibrate_cli

from .conftest import TRAIN_DATA, make_examples
from .test_pipeline import train


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A briefly trained pipeline on disk: its probabilities are far from
    calibrated, so the fitted temperature is far from 1."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner")
    train(nlp, make_examples(nlp.vocab), n_iter=8)
    path = tmp_path_factory.mktemp("calib") / "model"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def dev_path(model_dir):
    nlp = spacy.load(model_dir)
    path = model_dir.parent / "dev.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(nlp.vocab)]).to_disk(path)
    return path


def gold_docs(nlp):
    return [eg.reference for eg in make_examples(nlp.vocab)]


def test_minimise_log_t_finds_minimum():
    target = 1.7
    best, curve = minimise_log_t(lambda t: (math.log(t) - math.log(target)) ** 2, 0.25, 4.0)
    assert best == pytest.approx(target, rel=0.02)
    assert [t for t, _ in curve] == sorted(t for t, _ in curve)


def test_fit_lowers_nll_and_keeps_entities(model_dir):
    nlp = spacy.load(model_dir)
    fit = temperature_search(nlp, gold_docs(nlp))
    assert fit.before.temperature == 1.0
    assert fit.after.nll <= fit.before.nll
    assert fit.after.nll == min(v for _, v in fit.curve)
    assert 0.25 <= fit.temperature <= 4.0 and fit.temperature != 1.0
    assert fit.after.n_spans == fit.before.n_spans
    # Examples give the same answer as their reference docs.
    assert fit_temperature(nlp, make_examples(nlp.vocab)) == fit.temperature
    # The component's own settings are left as they were.
    ner = nlp.get_pipe("rnn_ner")
    assert ner.temperature == 1.0 and ner.threshold is None


def test_set_temperature_saves_in_config(model_dir, tmp_path):
    nlp = spacy.load(model_dir)
    texts = [Doc(nlp.vocab, words=words) for words, _ in TRAIN_DATA]
    before = [[(e.start, e.end, e.label_) for e in nlp(d).ents] for d in texts]
    set_temperature(nlp, "rnn_ner", 0.5)
    nlp.to_disk(tmp_path / "out")
    loaded = spacy.load(tmp_path / "out")
    assert loaded.get_pipe("rnn_ner").temperature == 0.5
    assert loaded.config["components"]["rnn_ner"]["temperature"] == 0.5
    after = [[(e.start, e.end, e.label_) for e in loaded(d).ents] for d in texts]
    assert after == before
    with pytest.raises(ValueError):
        set_temperature(nlp, "rnn_ner", 0.0)


def test_bad_input(model_dir):
    nlp = spacy.load(model_dir)
    with pytest.raises(ValueError, match="no component 'ner'"):
        fit_temperature(nlp, gold_docs(nlp), component="ner")
    unannotated = [Doc(nlp.vocab, words=words) for words, _ in TRAIN_DATA]
    with pytest.raises(ValueError, match="no entity annotation"):
        fit_temperature(nlp, unannotated)
    with pytest.raises(ValueError, match="no docs"):
        fit_temperature(nlp, [])
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(nlp, gold_docs(nlp), bounds=(2.0, 1.0))


def test_cli_in_process(model_dir, dev_path, tmp_path, capsys):
    out = tmp_path / "calibrated"
    assert calibrate_cli([str(model_dir), str(dev_path), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    line = next(l for l in printed.splitlines() if l.startswith("temperature = "))
    t = float(line.split("=")[1])
    assert "ECE" in printed and "before" in printed and "after" in printed
    assert spacy.load(out).get_pipe("rnn_ner").temperature == pytest.approx(t, abs=1e-4)


def test_cli_errors(model_dir, dev_path, tmp_path, capsys):
    assert calibrate_cli([str(model_dir), str(tmp_path / "missing.spacy")]) == 1
    assert calibrate_cli([str(model_dir), str(dev_path), "--component", "ner"]) == 1
    assert "no component 'ner'" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


@pytest.mark.slow
def test_cli_subprocess(model_dir, dev_path, tmp_path):
    out = tmp_path / "calibrated"
    result = subprocess.run(
        [sys.executable, "-m", "spacy_rnn_ner", "calibrate", str(model_dir), str(dev_path),
         "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    t = float(next(l for l in result.stdout.splitlines() if l.startswith("temperature = ")).split("=")[1])
    assert spacy.load(out).get_pipe("rnn_ner").temperature == pytest.approx(t, abs=1e-4)


def test_fit_without_spans_key(model_dir):
    """A component configured without a span group computes no
    probabilities; the fit uses a group of its own and leaves the setting."""
    with_key = spacy.load(model_dir)
    nlp = spacy.load(model_dir, config={"components": {"rnn_ner": {"spans_key": None}}})
    assert nlp.get_pipe("rnn_ner").spans_key is None
    assert fit_temperature(nlp, gold_docs(nlp)) == fit_temperature(with_key, gold_docs(with_key))
    assert nlp.get_pipe("rnn_ner").spans_key is None
