"""Fit the `temperature` setting of an `rnn_ner` component on gold data.

The temperature divides every chain score before forward-backward: the
entity probabilities in `doc.spans[spans_key]` get flatter (T > 1) or sharper
(T < 1), while the best path, and so `doc.ents`, does not change. It is fitted
by minimising the negative log-likelihood of the predicted entities (each
correct or not: an exact match of start, end and label with a gold entity)
over T in [0.25, 4]: a log-spaced grid, since nothing promises a single
minimum, then golden-section search around the best grid point. The model
runs once; each T only reruns `set_annotations` on copies of the docs.

    from spacy_rnn_ner.calibration import fit_temperature, set_temperature
    t = fit_temperature(nlp, dev_docs)          # gold Docs or Examples
    set_temperature(nlp, "rnn_ner", t)          # then nlp.to_disk(...)
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from .scoring import ECE_BINS, expected_calibration_error, judge_span_group

# Search range of T, and its resolution in log(T) (about 1% in T).
T_RANGE = (0.25, 4.0)
LOG_T_TOL = 0.01
# Grid points per octave of T before the golden-section search.
GRID_PER_OCTAVE = 3
# Probabilities are clipped into [EPS, 1 - EPS] for the NLL: a float32 entity
# probability can round to exactly 1.0, and one wrong entity at 1.0 would make
# the NLL infinite whatever T is.
EPS = 1e-7
BATCH_SIZE = 256


@dataclass
class Calibration:
    """How well the probabilities of the predicted entities match their
    observed accuracy at one temperature."""

    temperature: float
    n_spans: int
    ece: float
    nll: float


@dataclass
class TemperatureFit:
    """The fitted temperature, calibration before (at the component's
    temperature) and after (at the fitted one, on the same data: optimistic),
    and every (T, NLL) the search evaluated, sorted by T."""

    temperature: float
    before: Calibration
    after: Calibration
    curve: List[Tuple[float, float]]
    at_bound: bool


def fit_temperature(
    nlp: Language,
    docs: Iterable[Union[Doc, Example]],
    component: str = "rnn_ner",
    *,
    bounds: Tuple[float, float] = T_RANGE,
) -> float:
    """Fit the temperature of `nlp`'s component `component` on gold data.

    nlp (Language): A pipeline with a trained `rnn_ner` component.
    docs (Iterable[Union[Doc, Example]]): Gold docs with entity annotation
        (e.g. from a DocBin of dev data), or Examples whose reference is one.
        The pipeline runs on their tokens.
    component (str): The component's name. Default "rnn_ner".
    bounds (Tuple[float, float]): Search range of T.
    RETURNS (float): The temperature with the lowest NLL on `docs`.
    """
    return temperature_search(nlp, docs, component, bounds=bounds).temperature


def temperature_search(
    nlp: Language,
    docs: Iterable[Union[Doc, Example]],
    component: str = "rnn_ner",
    *,
    bounds: Tuple[float, float] = T_RANGE,
    n_bins: int = ECE_BINS,
    log: Optional[Callable[[str], None]] = None,
) -> TemperatureFit:
    """`fit_temperature` with the calibration before and after and the
    search curve. `log` receives a line per temperature tried.
    """
    lo, hi = bounds
    if not 0.0 < lo < hi:
        raise ValueError(f"temperature bounds must satisfy 0 < lo < hi, got {bounds!r}")
    ner = get_rnn_ner(nlp, component)
    gold = [d.reference if isinstance(d, Example) else d for d in docs]
    if not gold:
        raise ValueError("no docs to fit the temperature on")
    if not any(d.has_annotation("ENT_IOB") for d in gold):
        raise ValueError("the docs have no entity annotation: nothing to fit on")
    inputs, scores = predict_to(nlp, component, [gold_tokens(nlp, d) for d in gold])

    def at(temperature: float) -> Calibration:
        annotated = annotate(ner, inputs, scores, temperature=temperature, threshold=None)
        probs, correct = entity_outcomes(annotated, gold, spans_key_of(ner))
        return Calibration(
            temperature=temperature,
            n_spans=len(probs),
            ece=expected_calibration_error(probs, correct, n_bins),
            nll=nll(probs, correct),
        )

    before = at(ner.temperature)
    if not before.n_spans:
        raise ValueError(
            f"component {component!r} predicts no entities on these docs that can be "
            f"judged against the gold ones: nothing to fit on"
        )

    def evaluate(temperature: float) -> float:
        value = at(temperature).nll
        if log is not None:
            log(f"T={temperature:.4f}  NLL={value:.5f}")
        return value

    best, curve = minimise_log_t(evaluate, lo, hi)
    return TemperatureFit(
        temperature=best,
        before=before,
        after=at(best),
        curve=curve,
        at_bound=min(abs(math.log(best / b)) for b in bounds) < 2 * LOG_T_TOL,
    )


def set_temperature(nlp: Language, component: str, temperature: float) -> None:
    """Set the component's temperature and the pipeline's config, so that
    `nlp.to_disk` saves it (in config.cfg) and `spacy.load` restores it."""
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    ner = get_rnn_ner(nlp, component)
    ner.temperature = float(temperature)
    # The stored pipe config, which `nlp.config` (and so to_disk) is built from.
    nlp.get_pipe_config(component)["temperature"] = float(temperature)


def get_rnn_ner(nlp: Language, component: str):
    """The component `component` of `nlp`, which must have a temperature."""
    if component not in nlp.pipe_names:
        raise ValueError(f"no component {component!r} in the pipeline (has {nlp.pipe_names})")
    ner = nlp.get_pipe(component)
    if not hasattr(ner, "temperature") or not hasattr(ner, "spans_key"):
        raise ValueError(
            f"component {component!r} ({type(ner).__name__}) has no temperature setting: "
            f"it is not an rnn_ner component"
        )
    return ner


def gold_tokens(nlp: Language, gold: Doc) -> Doc:
    """The gold doc's tokens with nothing else, so that predictions align to
    the gold tokens whatever the pipeline's tokenizer would do."""
    return Doc(nlp.vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold])


def predict_to(nlp: Language, component: str, docs: List[Doc]) -> Tuple[List[Doc], list]:
    """Run every pipe before `component`, then its `predict` only.
    RETURNS: the docs as the component gets them, and its scores."""
    names = nlp.pipe_names
    for _, proc in nlp.pipeline[: names.index(component)]:
        if hasattr(proc, "pipe"):
            docs = list(proc.pipe(docs, batch_size=BATCH_SIZE))
        else:
            docs = [proc(doc) for doc in docs]
    ner = nlp.get_pipe(component)
    scores: list = []
    for i in range(0, len(docs), BATCH_SIZE):
        scores.extend(ner.predict(docs[i : i + BATCH_SIZE]))
    return docs, scores


def spans_key_of(ner) -> str:
    """The span group the probabilities go to while fitting: the
    component's, or its name if it was configured without one."""
    return ner.spans_key if ner.spans_key is not None else ner.name


def annotate(
    ner, docs: List[Doc], scores: list, *, temperature: float, threshold: Optional[float]
) -> List[Doc]:
    """`ner.set_annotations` on copies of `docs` at this temperature and
    threshold; the component's own settings are restored afterwards."""
    saved = {a: getattr(ner, a) for a in ("threshold", "temperature", "spans_key")}
    copies = [doc.copy() for doc in docs]
    try:
        ner.spans_key = spans_key_of(ner)
        ner.threshold = threshold
        ner.temperature = temperature
        for i in range(0, len(copies), BATCH_SIZE):
            ner.set_annotations(copies[i : i + BATCH_SIZE], scores[i : i + BATCH_SIZE])
    finally:
        for attr, value in saved.items():
            setattr(ner, attr, value)
    return copies


def entity_outcomes(
    docs: List[Doc], gold: List[Doc], spans_key: str
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """(probability, correct) of every span of the group that can be judged."""
    probs: List[float] = []
    correct: List[bool] = []
    for doc, gold_doc in zip(docs, gold):
        found = judge_span_group(Example(doc, gold_doc), spans_key)
        if found is None:
            continue
        for span in found[0]:
            probs.append(span.prob)
            correct.append(span.correct)
    return numpy.asarray(probs, dtype="f8"), numpy.asarray(correct, dtype=bool)


def nll(probs: numpy.ndarray, correct: numpy.ndarray) -> float:
    """Mean negative log-likelihood of what happened. NaN for no spans."""
    if not len(probs):
        return float("nan")
    p = numpy.clip(probs, EPS, 1.0 - EPS)
    return float(-numpy.mean(numpy.where(correct, numpy.log(p), numpy.log1p(-p))))


def minimise_log_t(
    evaluate: Callable[[float], float], lo: float, hi: float
) -> Tuple[float, List[Tuple[float, float]]]:
    """Minimise `evaluate(T)` over log(T) in [log lo, log hi]: a grid, then
    golden-section search between the best grid point's neighbours.
    RETURNS: the best T and every (T, value) evaluated, sorted by T."""
    cache: Dict[float, float] = {}

    def f(log_t: float) -> float:
        if log_t not in cache:
            cache[log_t] = evaluate(math.exp(log_t))
        return cache[log_t]

    a, b = math.log(lo), math.log(hi)
    n_grid = max(2, int(round((b - a) / math.log(2) * GRID_PER_OCTAVE)) + 1)
    grid = [float(x) for x in numpy.linspace(a, b, n_grid)]
    values = [f(x) for x in grid]
    best = int(numpy.argmin(values))
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, n_grid - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    c = right - ratio * (right - left)
    d = left + ratio * (right - left)
    while right - left > LOG_T_TOL:
        if f(c) <= f(d):
            right, d = d, c
            c = right - ratio * (right - left)
        else:
            left, c = c, d
            d = left + ratio * (right - left)
    best_log_t = min(cache, key=cache.__getitem__)
    curve = sorted((math.exp(x), v) for x, v in cache.items())
    return math.exp(best_log_t), curve
