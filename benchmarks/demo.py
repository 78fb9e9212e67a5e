"""The demo model: README command 1's training, measured where it matters.

    python benchmarks/demo.py                      # seeds 0 1 2 -> benchmarks/results/demo.{md,json}
    python benchmarks/demo.py --seeds 0 --out /tmp/demo

Builds the bundled corpus (`corpus/build.py`), trains the default config
(`configs/lstm.cfg`) once per seed with `python -m spacy train`, and reports
for each model: training wall time (the `spacy train` subprocess alone) and
the machine's load average, F on the synthetic dev set, F (P / R, per type)
on the hand-written set and on its two halves, the expected calibration error
on the hand-written set (benchmarks/calibration.py's functions, 10
equal-width bins, the configured temperature), and the entities found in the
showcase sentence of scripts/show_entities.py.

The halves: sentences 1, 3, 5, ... of corpus/handwritten.txt ("half A") were
looked at while the corpus generator was tuned for issue #17, sentences
2, 4, 6, ... ("half B") only at the end, so half B is the cleaner measure.

Models and the built corpus go to `--work` (default
benchmarks/cache/demo, git-ignored); the report is rendered from its JSON
alone (`render_markdown`).
"""
import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402
import calibration  # noqa: E402

CONFIG = "configs/lstm.cfg"
COMPONENT = "rnn_ner"
SEEDS = (0, 1, 2)
BINS = 10
LABELS = ("PER", "ORG", "LOC", "MISC")
SHOWCASE = (
    "Vincent Vega met Jules Winnfield in Lisbon on Monday, and Reuters reported "
    "that Acme Holdings will sponsor the World Cup in Brazil."
)
# The showcase's entities, as a reader would mark them.
SHOWCASE_GOLD = (
    ("Vincent Vega", "PER"), ("Jules Winnfield", "PER"), ("Lisbon", "LOC"), ("Reuters", "ORG"),
    ("Acme Holdings", "ORG"), ("World Cup", "MISC"), ("Brazil", "LOC"),
)

log = _common.logger("demo")


def halves(docs: Sequence[Doc]) -> Dict[str, List[Doc]]:
    """The hand-written set, its half A (sentences 1, 3, 5, ...: looked at
    while tuning) and half B (2, 4, 6, ...: kept for the end)."""
    return {"all": list(docs), "A": list(docs[0::2]), "B": list(docs[1::2])}


def ner_scores(nlp: Language, gold: Sequence[Doc]) -> Dict[str, Any]:
    """spaCy's NER scores of `nlp` on the gold docs (the pipeline reads their text)."""
    scores = nlp.evaluate([Example(nlp.make_doc(g.text), g) for g in gold])
    per_type = scores.get("ents_per_type") or {}
    return {
        "docs": len(gold),
        "entities": sum(len(g.ents) for g in gold),
        "p": scores["ents_p"], "r": scores["ents_r"], "f": scores["ents_f"],
        "per_type": {lab: per_type[lab]["f"] for lab in LABELS if lab in per_type},
    }


def ece(nlp: Language, gold: Sequence[Doc], bins: int = BINS) -> Dict[str, Any]:
    """Calibration of the best-path entities' probabilities (as
    benchmarks/calibration.py computes it, at the configured temperature)."""
    ner = nlp.get_pipe(COMPONENT)
    key = ner.spans_key or COMPONENT
    ner.spans_key = key
    golds = [calibration.gold_entities(doc) for doc in gold]
    docs, scores = calibration.run_to_component(
        nlp, COMPONENT, [calibration.gold_tokens(nlp, d) for d in gold])
    pairs = calibration.collect(
        calibration.annotate(ner, docs, scores, temperature=None, threshold=None), golds, key)
    rel = calibration.reliability(pairs["probs"], pairs["correct"], bins)
    return {k: rel[k] for k in ("n", "mean_confidence", "precision", "ece", "brier", "nll")}


def showcase(nlp: Language, text: str = SHOWCASE) -> Dict[str, Any]:
    """The entities found in `text` with their probabilities, and whether
    they are exactly the expected ones."""
    doc = nlp(text)
    probs = {}
    for group in doc.spans.values():
        if "scores" in group.attrs:
            probs.update(zip(((s.start, s.end, s.label_) for s in group), group.attrs["scores"]))
    ents = [{"text": e.text, "label": e.label_,
             "p": float(probs[(e.start, e.end, e.label_)]) if (e.start, e.end, e.label_) in probs else None}
            for e in doc.ents]
    found = {(e["text"], e["label"]) for e in ents}
    return {"entities": ents, "right": found == set(SHOWCASE_GOLD),
            "missed": sorted(set(SHOWCASE_GOLD) - found), "wrong": sorted(found - set(SHOWCASE_GOLD))}


def build_corpus(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(_common.REPO / "corpus" / "build.py"), "--out-dir", str(out_dir)],
                   check=True, capture_output=True, text=True)


def train(config: Path, corpus: Path, output: Path, seed: int) -> Dict[str, Any]:
    """README command 1's training step for one seed; RETURNS its wall time and load."""
    cmd = [sys.executable, "-m", "spacy", "train", str(config), "--output", str(output),
           "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
           "--system.seed", str(seed)]
    load_before = _common.loadavg()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=_common.REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"spacy train (seed {seed}) failed:\n{done.stderr[-3000:]}")
    return {"train_seconds": wall, "loadavg_before": load_before, "loadavg_after": _common.loadavg()}


def measure(model: Path, corpus: Path) -> Dict[str, Any]:
    nlp = spacy.load(model)
    read = lambda name: list(DocBin().from_disk(corpus / name).get_docs(nlp.vocab))  # noqa: E731
    hand = halves(read("handwritten.spacy"))
    return {
        "dev": ner_scores(nlp, read("dev.spacy")),
        "handwritten": {name: ner_scores(nlp, docs) for name, docs in hand.items()},
        "ece": ece(nlp, hand["all"]),
        "showcase": showcase(nlp),
    }


# --- Report ----------------------------------------------------------------------


def _f(x: Optional[float], digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def render_markdown(report: Dict[str, Any]) -> str:
    m = report["meta"]
    runs = report["runs"]
    out = [
        "# The default model on the hand-written set (issue #17)",
        "",
        f"Command: `{m['command']}`  ",
        f"Date: {m['date']}  ",
        f"Machine: {m['machine'].get('cpu')}, {m['machine'].get('cpus_allowed')} cores "
        "(shared with other jobs: see the load averages)  ",
        f"Versions: spaCy {m['machine']['versions'].get('spacy')}, thinc "
        f"{m['machine']['versions'].get('thinc')}, git {m['machine'].get('git')}",
        "",
        f"Each model is README command 1's training (`python -m spacy train {m['config']}` on "
        "the bundled corpus, `--system.seed S`). F is spaCy's entity F (exact span and label). "
        "Half A of the hand-written set (sentences 1, 3, 5, ...) was looked at while the "
        "corpus generator was tuned; half B (sentences 2, 4, 6, ...) only at the end. ECE: "
        f"benchmarks/calibration.py's expected calibration error of the best-path entities' "
        f"probabilities on the whole hand-written set, {m['bins']} equal-width bins, the "
        "configured temperature (the full reliability table of a model: "
        "`python benchmarks/calibration.py MODEL corpus/handwritten.spacy`, e.g. "
        "[demo-calibration.md](demo-calibration.md) for seed 0). Train wall: the "
        "`spacy train` subprocess alone.",
        "",
        "| seed | train wall | load (1 min) | synthetic dev F | hand-written F (P / R) | "
        "half A F | half B F | PER / ORG / LOC / MISC F | ECE | showcase |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|",
    ]
    for r in runs:
        hw = r["handwritten"]
        per = " / ".join(_f(hw["all"]["per_type"].get(lab), 2) for lab in LABELS)
        load = r.get("loadavg_before")
        show = "right" if r["showcase"]["right"] else "wrong"
        out.append(
            f"| {r['seed']} | {r['train_seconds']:.1f} s | {_f(load[0] if load else None, 1)} | "
            f"{_f(r['dev']['f'])} | {_f(hw['all']['f'])} ({_f(hw['all']['p'])} / "
            f"{_f(hw['all']['r'])}) | {_f(hw['A']['f'])} | {_f(hw['B']['f'])} | {per} | "
            f"{_f(r['ece']['ece'])} | {show} |"
        )
    if runs:
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        hw_fs = [r["handwritten"]["all"]["f"] for r in runs]
        out += [
            "",
            f"Mean over {len(runs)} seed(s): hand-written F {mean(hw_fs):.3f} "
            f"(min {min(hw_fs):.3f}), half B F {mean([r['handwritten']['B']['f'] for r in runs]):.3f}, "
            f"synthetic dev F {mean([r['dev']['f'] for r in runs]):.3f}, "
            f"ECE {mean([r['ece']['ece'] for r in runs]):.3f}; showcase right for "
            f"{sum(r['showcase']['right'] for r in runs)} of {len(runs)}.",
        ]
    out += ["", "## Showcase sentence", "", f"> {SHOWCASE}", ""]
    for r in runs:
        s = r["showcase"]
        ents = ", ".join(f"`{e['text']}` {e['label']}" + ("" if e["p"] is None else f" ({e['p']:.2f})")
                         for e in s["entities"]) or "(none)"
        extra = "" if s["right"] else (
            f" — missed: {', '.join(f'{t} {lab}' for t, lab in s['missed']) or 'none'}; "
            f"wrong: {', '.join(f'{t} {lab}' for t, lab in s['wrong']) or 'none'}")
        out.append(f"- seed {r['seed']}: {ents}{extra}")
    out.append("")
    return "\n".join(out)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--config", default=CONFIG, help=f"default {CONFIG}")
    parser.add_argument("--work", default="benchmarks/cache/demo",
                        help="folder for the built corpus and the models (git-ignored)")
    parser.add_argument("--out", default="benchmarks/results/demo",
                        help="writes OUT.md and OUT.json")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    command = _common.command_line("demo.py", sys.argv[1:] if argv is None else argv)
    work = _common.repo_path(args.work)
    config = _common.repo_path(args.config)
    corpus = work / "corpus"
    log(f"building the corpus into {corpus}")
    build_corpus(corpus)
    runs = []
    for seed in args.seeds:
        log(f"seed {seed}: spacy train {_common.show(config)}")
        run = {"seed": seed, **train(config, corpus, work / f"seed{seed}", seed)}
        run.update(measure(work / f"seed{seed}" / "model-best", corpus))
        log(f"seed {seed}: {run['train_seconds']:.1f}s, hand-written F "
            f"{run['handwritten']['all']['f']:.3f}, showcase "
            f"{'right' if run['showcase']['right'] else 'wrong'}")
        runs.append(run)
    report = {
        "meta": {
            "command": command,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "config": _common.show(config),
            "bins": BINS,
            "machine": _common.machine_facts(),
        },
        "runs": runs,
    }
    out = _common.repo_path(args.out)
    _common.write_report(out, report, render_markdown)
    log(f"wrote {_common.show(out.with_suffix('.md'))} and .json")
    return report


if __name__ == "__main__":
    main()
