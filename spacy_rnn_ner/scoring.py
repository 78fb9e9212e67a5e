"""Scores for the `rnn_ner` span group: P/R/F of `doc.spans[spans_key]`
against the gold entities, and the calibration error of its probabilities.

The span group holds the component's own entities (plus, in recall mode,
every other span at least `threshold` probable), each with its probability in
`attrs["scores"]`. Like spancat's scorer, precision is over the spans of the
group, so in recall mode it is the share of the group's spans (alternatives
included) that are gold entities and falls as the threshold is lowered;
recall is the share of gold entities that some span of the group matches
exactly. Without a threshold the group is the component's best path, and its
P/R/F are the component's own, even when another `ner` sets `doc.ents` too.
"""
from collections import defaultdict
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

import numpy
from spacy.scorer import PRFScore, get_ner_prf
from spacy.training import Example
from spacy.util import registry

from .config_types import PositiveInt

# Equal-width confidence bins of the expected calibration error.
ECE_BINS = 10

GoldKey = Tuple[str, int, int]  # (label, start, end) in the reference's tokens


class JudgedSpan(NamedTuple):
    label: str
    prob: float
    correct: bool


@registry.scorers("spacy-rnn-ner.span_scorer.v1")
def make_span_scorer(ece_bins: PositiveInt = ECE_BINS) -> Callable[..., Dict[str, Any]]:
    """The `rnn_ner` scorer: spaCy's NER scores (`ents_p`, `ents_r`,
    `ents_f`, `ents_per_type`) plus, for the span group `spans_key` that the
    component passes in, `spans_{key}_p`, `_r`, `_f`, `_per_type` and
    `spans_{key}_ece`.

    ece_bins (int): Equal-width confidence bins of the ECE. Default 10.
    """
    if ece_bins < 1:
        raise ValueError(f"ece_bins must be >= 1, got {ece_bins!r}")

    def score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        return score_rnn_ner(examples, spans_key=kwargs.get("spans_key"), ece_bins=ece_bins)

    return score


def score_rnn_ner(
    examples: Iterable[Example], *, spans_key: Optional[str], ece_bins: int = ECE_BINS
) -> Dict[str, Any]:
    """Entity scores and, with a `spans_key`, the span group's scores.

    RETURNS (Dict[str, Any]): `ents_*` as `spacy.ner_scorer.v1`, and
        `spans_{key}_p`, `_r`, `_f`, `_per_type`, `_ece` (None when nothing
        could be judged).
    """
    examples = list(examples)
    scores = get_ner_prf(examples)
    if spans_key is not None:
        scores.update(score_span_group(examples, spans_key, ece_bins=ece_bins))
    return scores


def score_span_group(
    examples: Iterable[Example], spans_key: str, *, ece_bins: int = ECE_BINS
) -> Dict[str, Any]:
    """P/R/F (micro and per label) of `doc.spans[spans_key]` against the gold
    entities, and the ECE of its probabilities. Docs whose reference has no
    entity annotation are skipped, and spans over tokens without gold
    annotation are neither right nor wrong, as in spaCy's NER scorer.
    """
    prefix = f"spans_{spans_key}"
    per_type: Dict[str, PRFScore] = defaultdict(PRFScore)
    judged: List[JudgedSpan] = []
    for eg in examples:
        found = judge_span_group(eg, spans_key)
        if found is None:
            continue
        spans, missed = found
        for span in spans:
            prf = per_type[span.label]
            if span.correct:
                prf.tp += 1
            else:
                prf.fp += 1
        for label, _, _ in missed:
            per_type[label].fn += 1
        judged.extend(spans)
    totals = PRFScore()
    for prf in per_type.values():
        totals += prf
    if not len(totals):
        return {f"{prefix}_{k}": None for k in ("p", "r", "f", "per_type", "ece")}
    probs = numpy.asarray([s.prob for s in judged], dtype="f8")
    correct = numpy.asarray([s.correct for s in judged], dtype=bool)
    return {
        f"{prefix}_p": totals.precision,
        f"{prefix}_r": totals.recall,
        f"{prefix}_f": totals.fscore,
        f"{prefix}_per_type": {k: v.to_dict() for k, v in per_type.items()},
        f"{prefix}_ece": expected_calibration_error(probs, correct, ece_bins) if judged else None,
    }


def judge_span_group(
    example: Example, spans_key: str
) -> Optional[Tuple[List[JudgedSpan], Set[GoldKey]]]:
    """Each span of the predicted doc's group `spans_key` that can be judged,
    with its probability and whether it matches a gold entity exactly (start,
    end and label, in the reference's tokens), and the gold entities no span
    matched. A doc without the group has an empty one.

    RETURNS: None if the reference has no entity annotation.
    """
    gold_doc = example.reference
    if not gold_doc.has_annotation("ENT_IOB"):
        return None
    golds = {(e.label_, e.start, e.end) for e in gold_doc.ents}
    group = example.predicted.spans.get(spans_key)
    if group is None or not len(group):
        return [], golds
    probs = group.attrs.get("scores")
    if probs is None or len(probs) != len(group):
        raise ValueError(
            f"doc.spans[{spans_key!r}] has no attrs['scores'] with one probability "
            f"per span: it was not set by an rnn_ner component"
        )
    iob = gold_doc.to_array("ENT_IOB")
    align = example.alignment.x2y
    judged: List[JudgedSpan] = []
    found: Set[GoldKey] = set()
    for span, prob in zip(group, probs):
        indices = align[span.start : span.end]
        if not len(indices):
            continue
        start, end = int(indices[0]), int(indices[-1]) + 1
        if (iob[start:end] == 0).any():
            continue  # no gold annotation there: neither right nor wrong
        key = (span.label_, start, end)
        judged.append(JudgedSpan(span.label_, float(prob), key in golds))
        found.add(key)
    return judged, golds - found


def expected_calibration_error(
    probs: numpy.ndarray, correct: numpy.ndarray, n_bins: int = ECE_BINS
) -> float:
    """ECE = sum over equal-width bins b of (n_b / N) * |accuracy_b -
    confidence_b| (the last bin closed at 1). NaN for no spans."""
    n = len(probs)
    if not n:
        return float("nan")
    edges = numpy.linspace(0.0, 1.0, n_bins + 1)
    index = numpy.clip(numpy.searchsorted(edges, probs, side="right") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = index == b
        count = int(in_bin.sum())
        if count:
            ece += count / n * abs(float(correct[in_bin].mean()) - float(probs[in_bin].mean()))
    return ece
