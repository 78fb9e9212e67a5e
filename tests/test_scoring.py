"""The span-group scorer `spacy-rnn-ner.span_scorer.v1`."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_rnn_ner.scoring import expected_calibration_error, score_span_group

from .conftest import TRAIN_DATA, make_examples
from .test_pipeline import train

WORDS = ["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London", "today", "."]
GOLD = ["B-PER", "L-PER", "O", "B-PER", "L-PER", "O", "U-LOC", "O", "O"]


def example_with_group(spans, probs, gold=GOLD, key="g"):
    """An Example whose predicted doc has the group `key` with (start, end,
    label) `spans` and `probs`, and whose reference has the BILUO `gold`."""
    nlp = spacy.blank("en")
    eg = Example.from_dict(Doc(nlp.vocab, words=WORDS), {"entities": list(gold)})
    doc = eg.predicted
    doc.spans[key] = [Span(doc, start, end, label=label) for start, end, label in spans]
    doc.spans[key].attrs["scores"] = numpy.asarray(probs, dtype="f")
    return eg


def test_group_precision_recall_with_alternatives():
    # Gold: PER 0-2, PER 3-5, LOC 6-7. The group has both PERs right, an
    # overlapping alternative (wrong) and a wrong-label LOC: precision is over
    # the group's spans, recall over the gold entities.
    spans = [(0, 2, "PER"), (0, 1, "PER"), (3, 5, "PER"), (6, 7, "PER")]
    eg = example_with_group(spans, [0.9, 0.2, 0.8, 0.6])
    scores = score_span_group([eg], "g")
    assert scores["spans_g_p"] == pytest.approx(2 / 4)
    assert scores["spans_g_r"] == pytest.approx(2 / 3)
    assert scores["spans_g_f"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    per_type = scores["spans_g_per_type"]
    assert per_type["PER"]["p"] == pytest.approx(2 / 4)
    assert per_type["LOC"]["r"] == 0.0
    expected_ece = expected_calibration_error(
        numpy.asarray([0.9, 0.2, 0.8, 0.6]), numpy.asarray([True, False, True, False])
    )
    assert scores["spans_g_ece"] == pytest.approx(expected_ece)


def test_spans_over_missing_annotation_are_not_judged():
    gold = ["B-PER", "L-PER", "-", "-", "-", "O", "U-LOC", "O", "O"]
    eg = example_with_group([(0, 2, "PER"), (3, 5, "PER"), (6, 7, "LOC")], [0.9, 0.1, 0.7], gold)
    scores = score_span_group([eg], "g")
    assert scores["spans_g_p"] == pytest.approx(1.0)
    assert scores["spans_g_r"] == pytest.approx(1.0)


def test_no_annotation_or_no_group():
    nlp = spacy.blank("en")
    unannotated = Example(Doc(nlp.vocab, words=WORDS), Doc(nlp.vocab, words=WORDS))
    scores = score_span_group([unannotated], "g")
    assert all(v is None for v in scores.values())
    # A doc without the group: every gold entity is missed.
    eg = Example.from_dict(Doc(nlp.vocab, words=WORDS), {"entities": GOLD})
    scores = score_span_group([eg], "g")
    assert scores["spans_g_r"] == 0.0 and scores["spans_g_ece"] is None


def test_group_without_scores_raises():
    eg = example_with_group([(0, 2, "PER")], [0.5])
    del eg.predicted.spans["g"].attrs["scores"]
    with pytest.raises(ValueError, match="attrs\\['scores'\\]"):
        score_span_group([eg], "g")


def test_ece():
    probs = numpy.asarray([0.95, 0.95, 0.35])
    correct = numpy.asarray([True, False, False])
    # Bin [0.9, 1]: confidence 0.95, accuracy 0.5; bin [0.3, 0.4): 0.35 vs 0.
    assert expected_calibration_error(probs, correct) == pytest.approx(2 / 3 * 0.45 + 1 / 3 * 0.35)
    assert expected_calibration_error(numpy.ones(4), numpy.ones(4, dtype=bool)) == 0.0
    assert numpy.isnan(expected_calibration_error(numpy.zeros(0), numpy.zeros(0, dtype=bool)))


def test_registry():
    scorer = registry.scorers.get("spacy-rnn-ner.span_scorer.v1")(ece_bins=5)
    assert callable(scorer)
    with pytest.raises(ValueError):
        registry.scorers.get("spacy-rnn-ner.span_scorer.v1")(ece_bins=0)


@pytest.fixture(scope="module")
def rnn_nlp():
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner")
    train(nlp, make_examples(nlp.vocab), n_iter=8)  # short: probabilities far from 0 and 1
    return nlp


def dev_examples(nlp):
    return make_examples(nlp.vocab)


def test_default_scorer_keeps_ner_scores(rnn_nlp):
    assert rnn_nlp.config["components"]["rnn_ner"]["scorer"]["@scorers"] == (
        "spacy-rnn-ner.span_scorer.v1"
    )
    scores = rnn_nlp.evaluate(dev_examples(rnn_nlp))
    for key in ("ents_p", "ents_r", "ents_f", "ents_per_type"):
        assert key in scores
    # Without a threshold the group is the best path: same P/R/F as doc.ents.
    for m in ("p", "r", "f"):
        assert scores[f"spans_rnn_ner_{m}"] == pytest.approx(scores[f"ents_{m}"])
    assert 0.0 <= scores["spans_rnn_ner_ece"] <= 1.0


def test_recall_mode_group_has_more_recall_less_precision(rnn_nlp):
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"threshold": 0.01})
    nlp.from_bytes(rnn_nlp.to_bytes())
    best = rnn_nlp.evaluate(dev_examples(rnn_nlp))
    recall = nlp.evaluate(dev_examples(nlp))
    assert recall["ents_f"] == pytest.approx(best["ents_f"])  # doc.ents unchanged
    assert recall["spans_rnn_ner_r"] >= best["spans_rnn_ner_r"]
    group_sizes = sum(len(nlp(Doc(nlp.vocab, words=w)).spans["rnn_ner"]) for w, _ in TRAIN_DATA)
    assert group_sizes > sum(len(rnn_nlp(Doc(rnn_nlp.vocab, words=w)).ents) for w, _ in TRAIN_DATA)
    assert recall["spans_rnn_ner_p"] <= best["spans_rnn_ner_p"]


def test_custom_and_no_spans_key(rnn_nlp):
    for key in ("mine", None):
        nlp = spacy.blank("en")
        nlp.add_pipe("rnn_ner", config={"spans_key": key})
        nlp.from_bytes(rnn_nlp.to_bytes())
        scores = nlp.evaluate(dev_examples(nlp))
        spans_keys = {k for k in scores if k.startswith("spans_")}
        if key is None:
            assert not spans_keys and "ents_f" in scores
        else:
            assert {"spans_mine_f", "spans_mine_ece"} <= spans_keys


def test_old_ner_scorer_config_still_scores(rnn_nlp):
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"scorer": {"@scorers": "spacy.ner_scorer.v1"}})
    nlp.from_bytes(rnn_nlp.to_bytes())
    scores = nlp.evaluate(dev_examples(nlp))
    assert "ents_f" in scores and not any(k.startswith("spans_") for k in scores)


def test_per_component_tells_ner_and_rnn_ner_apart(rnn_nlp):
    # rnn_ner first, then spaCy's ner (barely trained), which adds its own
    # entities to doc.ents: both components' ents_* score the same doc.ents,
    # but rnn_ner's spans_rnn_ner_* are its own predictions.
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", source=_as_pipeline(rnn_nlp))
    nlp.add_pipe("ner")
    examples = dev_examples(nlp)
    with nlp.select_pipes(enable=["ner"]):
        nlp.initialize(lambda: examples)
    nlp.get_pipe("ner").update(examples)  # a step: predictions that differ
    per = nlp.evaluate(dev_examples(nlp), per_component=True)
    assert set(per) >= {"rnn_ner", "ner"}
    assert not any(k.startswith("spans_") for k in per["ner"])
    alone = rnn_nlp.evaluate(dev_examples(rnn_nlp))
    for m in ("p", "r", "f"):
        assert per["rnn_ner"][f"spans_rnn_ner_{m}"] == pytest.approx(alone[f"ents_{m}"])
    assert per["rnn_ner"]["spans_rnn_ner_ece"] == pytest.approx(alone["spans_rnn_ner_ece"])


def _as_pipeline(nlp):
    copy = spacy.blank("en")
    copy.add_pipe("rnn_ner")
    return copy.from_bytes(nlp.to_bytes())
