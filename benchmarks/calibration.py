"""How well the `rnn_ner` entity probabilities are calibrated.

    python benchmarks/calibration.py MODEL DATA.spacy
    python benchmarks/calibration.py MODEL DEV.spacy --fit-temperature
    python benchmarks/calibration.py MODEL DEV.spacy --bins 15 --out /tmp/calib

Runs the pipeline over the gold docs of a DocBin (the gold tokens, with no
entities, are the input) and takes, for every predicted entity in the
component's span group `doc.spans[spans_key]`, its probability from
`attrs["scores"]` and whether it is correct: an exact match of start, end and
label with a gold entity. From these pairs:

- a reliability table (equal-width confidence bins: count, mean confidence,
  observed precision), the expected calibration error
  ECE = sum_b (n_b / N) * |precision_b - confidence_b|, the Brier score and the
  mean negative log-likelihood;
- precision and recall of the entities kept at a few probability thresholds;
- recall mode: with the component's `threshold` set, the recall of gold
  entities matched exactly by any span of the group, and the group's size.

`--fit-temperature` fits the component's `temperature` setting (which divides
the chain scores before forward-backward: the probabilities change, the best
path does not) by minimising the NLL of the pairs over T in [0.25, 4]: a
log-spaced grid, then golden-section search around the best grid point. The
model runs once (`predict`); each T only reruns `set_annotations` on fresh
copies of the docs. The fitted T is printed as a config line. Fit on dev data:
the "after" numbers are measured on the data T was fitted on, so they are
optimistic; check them on held-out data with `--temperature T`. The search,
the runs and the ECE are the package's (`spacy_rnn_ner.calibration`,
`spacy_rnn_ner.scoring`); users fit and save the temperature with
`python -m spacy_rnn_ner calibrate MODEL DEV.spacy --output MODEL_OUT`.

Writes `OUT.md` and `OUT.json` (default `benchmarks/results/calibration`),
with the command and date.
"""
import argparse
import datetime
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from spacy_rnn_ner import calibration
from spacy_rnn_ner.calibration import LOG_T_TOL, T_RANGE, gold_tokens, minimise_log_t, nll
from spacy_rnn_ner.scoring import expected_calibration_error

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

COMPONENT = "rnn_ner"
PRECISION_THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.99)
RECALL_THRESHOLDS = (0.1, 0.3)
BATCH_SIZE = 256


log = _common.logger()


# --- Running the model ----------------------------------------------------------


def load_gold(nlp: Language, path: Path) -> List[Doc]:
    docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    if not docs:
        raise SystemExit(f"{path}: no docs")
    return docs


def run_to_component(nlp: Language, name: str, docs: List[Doc]) -> Tuple[List[Doc], list]:
    """Every pipe before `name`, then `name`'s `predict` only (the package's
    `calibration.predict_to`)."""
    if name not in nlp.pipe_names:
        raise SystemExit(f"no component {name!r} in the pipeline (has {nlp.pipe_names})")
    return calibration.predict_to(nlp, name, docs)


def annotate(
    ner, docs: List[Doc], scores: list, *, temperature: Optional[float], threshold: Optional[float]
) -> List[Doc]:
    """`ner.set_annotations` on copies of `docs` at this temperature (None:
    the component's) and threshold (the package's `calibration.annotate`)."""
    if temperature is None:
        temperature = ner.temperature
    return calibration.annotate(ner, docs, scores, temperature=temperature, threshold=threshold)


# --- Pairs and metrics ------------------------------------------------------------

Key = Tuple[int, int, str]


def gold_entities(gold: Doc) -> Tuple[set, numpy.ndarray]:
    """(start, end, label) of the gold entities, and which tokens have no
    gold NER annotation (ENT_IOB 0): predictions there can't be judged."""
    missing = gold.to_array("ENT_IOB") == 0
    return {(e.start, e.end, e.label_) for e in gold.ents}, missing


def group_spans(doc: Doc, key: str) -> List[Tuple[Key, float]]:
    if key not in doc.spans:
        return []
    group = doc.spans[key]
    probs = group.attrs.get("scores")
    if probs is None or len(probs) != len(group):
        raise SystemExit(f"doc.spans[{key!r}] has no attrs['scores'] aligned with its spans")
    return [((s.start, s.end, s.label_), float(p)) for s, p in zip(group, probs)]


def collect(
    docs: List[Doc], golds: Sequence[Tuple[set, numpy.ndarray]], key: str
) -> Dict[str, Any]:
    """(probability, correct) per judged span of the group, plus counts."""
    probs: List[float] = []
    correct: List[bool] = []
    n_unjudged = 0
    n_spans = 0
    covered = 0
    for doc, (gold, missing) in zip(docs, golds):
        spans = group_spans(doc, key)
        n_spans += len(spans)
        keys = set()
        for span, p in spans:
            if missing[span[0] : span[1]].any():
                n_unjudged += 1
                continue
            keys.add(span)
            probs.append(p)
            correct.append(span in gold)
        covered += len(gold & keys)
    return {
        "probs": numpy.asarray(probs, dtype="f8"),
        "correct": numpy.asarray(correct, dtype=bool),
        "n_spans": n_spans,
        "n_unjudged": n_unjudged,
        "gold_covered": covered,
    }


def reliability(probs: numpy.ndarray, correct: numpy.ndarray, n_bins: int) -> Dict[str, Any]:
    """Equal-width bins over [0, 1] (the last one closed), ECE, Brier, NLL.
    (No maximum calibration error: it is set by whichever bin holds one or
    two entities.)"""
    edges = numpy.linspace(0.0, 1.0, n_bins + 1)
    index = numpy.clip(numpy.searchsorted(edges, probs, side="right") - 1, 0, n_bins - 1)
    n = len(probs)
    bins = []
    for b in range(n_bins):
        in_bin = index == b
        count = int(in_bin.sum())
        row: Dict[str, Any] = {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count}
        if count:
            conf = float(probs[in_bin].mean())
            prec = float(correct[in_bin].mean())
            row.update(confidence=conf, precision=prec, gap=prec - conf)
        bins.append(row)
    return {
        "n": n,
        "mean_confidence": float(probs.mean()) if n else float("nan"),
        "precision": float(correct.mean()) if n else float("nan"),
        "ece": expected_calibration_error(probs, correct, n_bins),
        "brier": float(numpy.mean((probs - correct) ** 2)) if n else float("nan"),
        "nll": nll(probs, correct),
        "bins": bins,
    }


def at_thresholds(
    probs: numpy.ndarray, correct: numpy.ndarray, n_gold: int, thresholds: Sequence[float]
) -> List[Dict[str, Any]]:
    """Keep the predicted entities with probability >= t: how many, how
    precise, what recall (predictions are never duplicated, so the correct
    ones kept are the gold entities found)."""
    rows = []
    for t in [0.0, *thresholds]:
        keep = probs >= t
        kept = int(keep.sum())
        tp = int(correct[keep].sum())
        rows.append({
            "threshold": t,
            "kept": kept,
            "kept_share": kept / len(probs) if len(probs) else float("nan"),
            "precision": tp / kept if kept else float("nan"),
            "recall": tp / n_gold if n_gold else float("nan"),
        })
    return rows


def recall_mode(
    ner, docs, scores, golds, key: str, n_gold: int, thresholds: Sequence[float],
    temperature: Optional[float],
) -> List[Dict[str, Any]]:
    rows = []
    for t in [None, *thresholds]:
        annotated = annotate(ner, docs, scores, temperature=temperature, threshold=t)
        found = collect(annotated, golds, key)
        rows.append({
            "threshold": t,
            "temperature": temperature,
            "group_spans": found["n_spans"],
            "spans_per_doc": found["n_spans"] / len(docs),
            "spans_per_gold": found["n_spans"] / n_gold if n_gold else float("nan"),
            "gold_covered": found["gold_covered"],
            "recall": found["gold_covered"] / n_gold if n_gold else float("nan"),
            "precision": float(found["correct"].mean()) if len(found["correct"]) else float("nan"),
        })
    return rows


# --- Temperature ------------------------------------------------------------------


def fit_temperature(evaluate, lo: float, hi: float) -> Tuple[float, List[Tuple[float, float]]]:
    """The package's search (`calibration.minimise_log_t`), logging each T."""

    def logged(t: float) -> float:
        value = evaluate(t)
        log(f"  T={t:.4f}  NLL={value:.5f}")
        return value

    return minimise_log_t(logged, lo, hi)


# --- Report -------------------------------------------------------------------------


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}"


def summary_rows(runs: List[Tuple[str, Dict[str, Any]]]) -> List[str]:
    lines = [
        "| | T | entities | mean confidence | precision | ECE | Brier | NLL |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, r in runs:
        lines.append(
            f"| {name} | {fmt(r['temperature'])} | {r['n']} | {fmt(r['mean_confidence'])} | "
            f"{fmt(r['precision'])} | {fmt(r['ece'], 4)} | "
            f"{fmt(r['brier'], 4)} | {fmt(r['nll'], 4)} |"
        )
    return lines


def reliability_rows(rel: Dict[str, Any]) -> List[str]:
    lines = [
        "| confidence | count | mean confidence | precision | precision − confidence |",
        "|:--|--:|--:|--:|--:|",
    ]
    for i, b in enumerate(rel["bins"]):
        close = "]" if i == len(rel["bins"]) - 1 else ")"
        name = f"[{b['lo']:.2f}, {b['hi']:.2f}{close}"
        if b["count"]:
            lines.append(
                f"| {name} | {b['count']} | {fmt(b['confidence'])} | {fmt(b['precision'])} | "
                f"{b['gap']:+.3f} |"
            )
        else:
            lines.append(f"| {name} | 0 | – | – | – |")
    return lines


def render_markdown(report: Dict[str, Any]) -> str:
    m = report["meta"]
    out = [
        "# Calibration of `rnn_ner` entity probabilities",
        "",
        f"Command: `{m['command']}`  ",
        f"Date: {m['date']}  ",
        f"Model: `{m['model']}` (component `{m['component']}`, span group "
        f"`{m['spans_key']}`, configured temperature {fmt(m['configured_temperature'])})  ",
        f"Data: `{m['data']}`: {m['docs']} docs, {m['tokens']} tokens, "
        f"{m['gold_entities']} gold entities  ",
        f"Versions: spaCy {m['versions'].get('spacy')}, spacy-rnn-ner "
        f"{m['versions'].get('spacy-rnn-ner')}, Python {m['python']}",
        "",
        "Each predicted entity (the best path: `doc.ents`) carries its marginal probability "
        "from `doc.spans[spans_key].attrs[\"scores\"]`; it is correct if start, end and label "
        "match a gold entity exactly. Confidence bins are equal-width. ECE = Σ_b (n_b/N)·"
        "|precision_b − confidence_b|; Brier = mean (p − correct)²; "
        "NLL = mean −log of the probability given to what happened.",
    ]
    if report["unjudged"]:
        out += ["", f"{report['unjudged']} predicted entities overlap tokens without gold NER "
                "annotation and are left out."]
    runs = [(report["calibration_label"], report["calibration"])]
    if report.get("temperature_fit"):
        runs.append(("fitted temperature", report["temperature_fit"]["calibration"]))
    out += ["", "## Summary", "", *summary_rows(runs)]
    fit = report.get("temperature_fit")
    if fit:
        out += [
            "",
            f"Fitted on this data: **T = {fit['temperature']:.3f}** "
            f"(NLL {fit['nll_before']:.4f} → {fit['nll_after']:.4f}; "
            f"search over T in [{T_RANGE[0]}, {T_RANGE[1]}], "
            f"{len(fit['curve'])} evaluations). T > 1 flattens the probabilities "
            "(the model was over-confident), T < 1 sharpens them. The \"fitted\" row is "
            "measured on the same data the temperature was fitted on: expect it to be "
            "somewhat worse on held-out data. To use it:",
            "",
            "```ini",
            f"[components.{m['component']}]",
            f"temperature = {fit['temperature']:.3f}",
            "```",
        ]
        if fit["at_bound"]:
            out += ["", "The best T is at the edge of the search range: the true optimum may lie "
                    "outside it."]
    elif report.get("temperature_note"):
        out += ["", report["temperature_note"]]
    for name, rel in runs:
        out += ["", f"## Reliability ({name}, T = {fmt(rel['temperature'])})", "",
                *reliability_rows(rel)]
    out += [
        "",
        "## Precision at thresholds",
        "",
        "Predicted entities kept if their probability is ≥ the threshold "
        f"(T = {fmt(report['thresholds_temperature'])}); recall is of all gold entities.",
        "",
        "| threshold | kept | kept % | precision | recall |",
        "|--:|--:|--:|--:|--:|",
    ]
    for r in report["precision_at"]:
        t = "all" if r["threshold"] == 0.0 else fmt(r["threshold"], 2)
        out.append(f"| {t} | {r['kept']} | {pct(r['kept_share'])} | "
                   f"{pct(r['precision'])} | {pct(r['recall'])} |")
    out += [
        "",
        "## Recall mode",
        "",
        "The component's `threshold` set: the span group holds the best-path entities plus "
        "every other span (up to 16 tokens) with probability ≥ threshold. Recall = gold "
        "entities matched exactly by some span of the group; precision = share of the group's "
        "spans that are gold entities.",
        "",
        "| threshold | T | group spans | per doc | per gold entity | recall | precision |",
        "|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["recall_mode"]:
        t = "none (best path)" if r["threshold"] is None else fmt(r["threshold"], 2)
        out.append(
            f"| {t} | {fmt(r['temperature'])} | {r['group_spans']} | "
            f"{fmt(r['spans_per_doc'], 2)} | {fmt(r['spans_per_gold'], 2)} | "
            f"{pct(r['recall'])} | {pct(r['precision'])} |"
        )
    if fit:
        out += [
            "",
            "## Temperature search",
            "",
            "| T | NLL |",
            "|--:|--:|",
            *[f"| {t:.4f} | {v:.5f} |" for t, v in fit["curve"]],
        ]
    return "\n".join(out) + "\n"


# --- Main ---------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="pipeline directory or package with an rnn_ner component")
    p.add_argument("data", type=Path, help="gold DocBin (.spacy), e.g. the dev set")
    p.add_argument("--bins", type=int, default=10, help="confidence bins (default 10)")
    p.add_argument("--fit-temperature", action="store_true",
                   help="fit the component's temperature on DATA by NLL")
    p.add_argument("--temperature", type=float, default=None,
                   help="evaluate at this temperature instead of the configured one")
    p.add_argument("--component", default=COMPONENT, help="component name (default rnn_ner)")
    p.add_argument("--thresholds", type=float, nargs="*", default=list(PRECISION_THRESHOLDS),
                   help="probability thresholds for the precision table")
    p.add_argument("--recall-thresholds", type=float, nargs="*", default=list(RECALL_THRESHOLDS),
                   help="values of the component's threshold setting for recall mode")
    p.add_argument("--out", default="benchmarks/results/calibration",
                   help="output prefix: writes OUT.md and OUT.json")
    args = p.parse_args(argv)
    if args.bins < 1:
        p.error("--bins must be >= 1")
    if args.temperature is not None and not args.temperature > 0:
        p.error("--temperature must be > 0")
    if any(not 0.0 < t <= 1.0 for t in args.recall_thresholds):
        p.error("--recall-thresholds must be in (0, 1]")
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    command = _common.command_line("calibration.py", sys.argv[1:] if argv is None else argv)
    nlp = spacy.load(args.model)
    ner = nlp.get_pipe(args.component) if args.component in nlp.pipe_names else None
    if ner is None:
        raise SystemExit(f"no component {args.component!r} in {args.model} ({nlp.pipe_names})")
    has_temperature = hasattr(ner, "temperature")
    if (args.fit_temperature or args.temperature is not None) and not has_temperature:
        raise SystemExit(f"component {args.component!r} has no temperature setting: this "
                         "spacy-rnn-ner is too old for --fit-temperature / --temperature")
    # Probabilities are only computed with a span group: use one if the model
    # was configured without.
    key = ner.spans_key or args.component
    ner.spans_key = key
    configured_t = ner.temperature if has_temperature else None
    base_t = args.temperature if args.temperature is not None else configured_t

    gold_docs = load_gold(nlp, args.data)
    golds = [gold_entities(doc) for doc in gold_docs]
    n_gold = sum(len(g) for g, _ in golds)
    log(f"{len(gold_docs)} docs, {n_gold} gold entities; running the pipeline")
    t0 = time.perf_counter()
    docs, scores = run_to_component(nlp, args.component, [gold_tokens(nlp, d) for d in gold_docs])
    log(f"predict: {time.perf_counter() - t0:.1f}s")

    def pairs_at(temperature: Optional[float]) -> Dict[str, Any]:
        return collect(annotate(ner, docs, scores, temperature=temperature, threshold=None),
                       golds, key)

    t0 = time.perf_counter()
    base = pairs_at(base_t)
    log(f"set_annotations: {time.perf_counter() - t0:.1f}s")
    calibration = dict(reliability(base["probs"], base["correct"], args.bins), temperature=base_t)
    report: Dict[str, Any] = {
        "meta": {
            "command": command,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "model": str(args.model),
            "component": args.component,
            "spans_key": key,
            "configured_temperature": configured_t,
            "data": str(args.data),
            "docs": len(gold_docs),
            "tokens": sum(len(d) for d in gold_docs),
            "gold_entities": n_gold,
            "bins": args.bins,
            "python": platform.python_version(),
            "versions": _common.versions(),
        },
        "unjudged": base["n_unjudged"],
        "calibration_label": "as configured" if args.temperature is None else "--temperature",
        "calibration": calibration,
        "temperature_fit": None,
    }
    if not has_temperature:
        report["temperature_note"] = ("This version of the component has no `temperature` "
                                      "setting: no temperature was fitted.")
    thresholds_t = base_t
    recall_ts = [base_t]
    probs_for_thresholds = base
    if args.fit_temperature and not len(base["probs"]):
        report["temperature_note"] = "No predicted entities: no temperature was fitted."
    elif args.fit_temperature:
        log(f"fitting the temperature over [{T_RANGE[0]}, {T_RANGE[1]}]")

        def evaluate(t: float) -> float:
            found = pairs_at(t)
            return nll(found["probs"], found["correct"])

        best_t, curve = fit_temperature(evaluate, *T_RANGE)
        fitted = pairs_at(best_t)
        report["temperature_fit"] = {
            "temperature": best_t,
            "nll_before": calibration["nll"],
            "nll_after": nll(fitted["probs"], fitted["correct"]),
            "at_bound": min(abs(math.log(best_t / b)) for b in T_RANGE) < 2 * LOG_T_TOL,
            "curve": curve,
            "calibration": dict(reliability(fitted["probs"], fitted["correct"], args.bins),
                                temperature=best_t),
        }
        thresholds_t = best_t
        recall_ts.append(best_t)
        probs_for_thresholds = fitted
    report["thresholds_temperature"] = thresholds_t
    report["precision_at"] = at_thresholds(probs_for_thresholds["probs"],
                                           probs_for_thresholds["correct"], n_gold, args.thresholds)
    log("recall mode")
    report["recall_mode"] = [
        row for t in recall_ts
        for row in recall_mode(ner, docs, scores, golds, key, n_gold, args.recall_thresholds, t)
    ]

    markdown = render_markdown(report)
    md_path, json_path = Path(f"{args.out}.md"), Path(f"{args.out}.json")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown, encoding="utf8")
    _common.write_json(json_path, report)  # NaN (an empty bin, no entities) as null
    print(markdown)
    summary = f"ECE {calibration['ece']:.4f} at T = {fmt(base_t)}"
    fit = report["temperature_fit"]
    if fit:
        summary += (f"; fitted T = {fit['temperature']:.3f}: ECE "
                    f"{fit['calibration']['ece']:.4f} (in-sample)\n"
                    f"config: [components.{args.component}] temperature = {fit['temperature']:.3f}")
    print(summary)
    log(f"wrote {md_path} and {json_path}")
    return report


if __name__ == "__main__":
    main()
