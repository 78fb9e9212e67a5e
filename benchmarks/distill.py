"""Students distilled from a teacher (`python -m spacy_rnn_ner distill`)
against models of the same config trained on the gold tags alone.

    python benchmarks/distill.py --teacher TEACHER --config configs/lstm.cfg \\
        --seeds 2 3 --dev corpus/dev.spacy --test corpus/handwritten.spacy \\
        --out benchmarks/results/distill-demo [--teacher-weight 1.0] \\
        [--unlabelled RAW.txt] [--baselines ner=PATH ...] \\
        [-- --paths.train corpus/train.spacy ...]

For each seed, one student is trained with the command and one undistilled
model with `python -m spacy train` (same config, seed and overrides; both
in --cache, reused when there). Each model-best, and the teacher, is scored
with spaCy's scorer (`nlp.evaluate`: entity P/R/F) on every split, with its
agreement with the teacher on the first split (tokens with the same
predicted tag, and entity F of its predictions against the teacher's).
Speed: words per second of teacher, student and undistilled model over the
first split, timed alternately (best of --speed-rounds), 1 BLAS thread.
Other trained pipelines (--baselines, e.g. spaCy's `ner` trained in the
same run) are scored and timed beside them. The summary gives medians over
the seeds with their range.
"""
import argparse
import datetime
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402


def train_model(kind: str, args: argparse.Namespace, seed: int, out: Path, log) -> Dict[str, Any]:
    """Train one student ("distilled") or undistilled model unless `out`
    has one; RETURNS its path and training seconds (None when reused)."""
    if (out / "model-best").is_dir():
        log(f"reusing {_common.show(out)}")
        return {"path": _common.show(out / "model-best"), "train_s": None}
    config = str(_common.repo_path(args.config))
    overrides = ["--system.seed", str(seed), *args.overrides]
    if kind == "distilled":
        cmd = [sys.executable, "-m", "spacy_rnn_ner", "distill", str(_common.repo_path(args.teacher)),
               config, "--output", str(out), "--teacher-weight", str(args.teacher_weight),
               *[arg for path in args.unlabelled for arg in ("--unlabelled", path)], *overrides]
    else:
        cmd = [sys.executable, "-m", "spacy", "train", config, "--output", str(out), *overrides]
    log(f"training {kind} seed {seed} -> {_common.show(out)}")
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=_common.REPO, env=_common.thread_env(args.threads),
                   stdout=subprocess.DEVNULL)
    return {"path": _common.show(out / "model-best"), "train_s": time.perf_counter() - start}


def predicted(nlp, golds: Sequence) -> List:
    """`nlp` run on the gold docs' tokens."""
    from spacy.tokens import Doc

    return list(nlp.pipe(Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_)
                                                                              for t in doc])
                         for doc in golds))


def agreement(docs: Sequence, teacher_docs: Sequence) -> Dict[str, float]:
    """Token tag agreement and entity F of `docs` against the teacher's."""
    same = total = 0
    mine, theirs = set(), set()
    for i, (doc, ref) in enumerate(zip(docs, teacher_docs)):
        for a, b in zip(doc, ref):
            same += (a.ent_iob_, a.ent_type_) == (b.ent_iob_, b.ent_type_)
            total += 1
        mine |= {(i, e.start, e.end, e.label_) for e in doc.ents}
        theirs |= {(i, e.start, e.end, e.label_) for e in ref.ents}
    both = len(mine & theirs)
    return {"tokens": same / max(total, 1),
            "ents_f": 2 * both / max(len(mine) + len(theirs), 1)}


def evaluate(nlp, splits: Dict[str, List]) -> Dict[str, Dict[str, float]]:
    """spaCy's entity P/R/F per split (`get_ner_prf`)."""
    from spacy.scorer import get_ner_prf
    from spacy.training import Example

    out = {}
    for name, golds in splits.items():
        examples = [Example(doc, gold) for doc, gold in zip(predicted(nlp, golds), golds)]
        scores = get_ner_prf(examples)
        out[name] = {k: float(scores[k] or 0.0) for k in ("ents_p", "ents_r", "ents_f")}
    return out


def words_per_s(models: Dict[str, Any], golds: Sequence, rounds: int) -> Dict[str, float]:
    """Best words per second of each model over `golds`, timed alternately."""
    n_words = sum(len(doc) for doc in golds)
    best = {name: 0.0 for name in models}
    for _ in range(rounds):
        for name, nlp in models.items():
            start = time.perf_counter()
            predicted(nlp, golds)
            best[name] = max(best[name], n_words / (time.perf_counter() - start))
    return best


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import spacy
    from spacy.tokens import DocBin

    log = _common.logger("distill")
    cache = _common.repo_path(args.cache)
    teacher = spacy.load(_common.repo_path(args.teacher))
    paths = {"dev": args.dev, **({"test": args.test} if args.test else {})}
    splits = {name: list(DocBin().from_disk(_common.repo_path(p)).get_docs(teacher.vocab))
              for name, p in paths.items()}
    first = splits["dev"]
    teacher_docs = predicted(teacher, first)
    result: Dict[str, Any] = {
        "teacher": {"path": _common.show(_common.repo_path(args.teacher)),
                    **evaluate(teacher, splits)},
        "splits": list(splits), "seeds": [], "baselines": [], "threads": args.threads}
    baselines = {}
    for name, path in _common.parse_models(args.baselines):
        baselines[name] = spacy.load(_common.repo_path(path))
        result["baselines"].append({"name": name, "path": _common.show(_common.repo_path(path)),
                                    **evaluate(baselines[name], splits)})
    for seed in args.seeds:
        row: Dict[str, Any] = {"seed": seed}
        loaded = {"teacher": teacher, **baselines}
        for kind in ("distilled", "undistilled"):
            model = train_model(kind, args, seed, cache / f"{kind}-s{seed}", log)
            nlp = spacy.load(_common.repo_path(model["path"]))
            loaded[kind] = nlp
            model.update(evaluate(nlp, splits))
            model["agreement"] = agreement(predicted(nlp, first), teacher_docs)
            row[kind] = model
            log(f"{kind} seed {seed}: dev F {100 * model['dev']['ents_f']:.2f}, token "
                f"agreement {100 * model['agreement']['tokens']:.2f}")
        row["words_per_s"] = words_per_s(loaded, first, args.speed_rounds)
        result["seeds"].append(row)
    return result


def _values(rows: List[Dict[str, Any]], *keys: str) -> List[float]:
    values = []
    for row in rows:
        for key in keys:
            row = row[key]
        values.append(row)
    return values


def _median_range(values: Sequence[float], scale: float = 100.0) -> str:
    values = [scale * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def render(report: Dict[str, Any]) -> str:
    result, meta = report["result"], report["meta"]
    splits = result["splits"]
    f_head = " / ".join(splits)
    lines = [
        "# Distilling an ensemble into one model", "",
        f"Command: `{meta['command']}`  ", f"Date: {meta['date']}  ",
        *([f"Teacher made with: {meta['note']}  "] if meta.get("note") else []),
        f"Teacher: `{result['teacher']['path']}`, entity F {f_head}: "
        + " / ".join(f"{100 * result['teacher'][s]['ents_f']:.2f}" for s in splits), "",
        "Per seed the student (`python -m spacy_rnn_ner distill`) and a model of the same "
        "config, seed and steps trained on the gold tags (`spacy train`). Agreement with "
        f"the teacher on {splits[0]}: tokens with the same predicted tag, and entity F "
        "against the teacher's entities. Speed: words/s over "
        f"{splits[0]}, 1 BLAS thread, best of the timed passes; ratio = student / undistilled.",
        "",
        f"| seed | model | entity F ({f_head}) | token agreement | entity agreement F | "
        "words/s | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["seeds"]:
        wps = row["words_per_s"]
        for kind in ("distilled", "undistilled"):
            m = row[kind]
            f = " / ".join(f"{100 * m[s]['ents_f']:.2f}" for s in splits)
            train_s = "reused" if m["train_s"] is None else f"{m['train_s']:.0f}"
            lines.append(f"| {row['seed']} | {kind} | {f} | {100 * m['agreement']['tokens']:.2f} | "
                         f"{100 * m['agreement']['ents_f']:.2f} | {wps[kind]:,.0f} | {train_s} |")
        lines.append(f"| {row['seed']} | teacher | | | | {wps['teacher']:,.0f} | |")
    for b in result["baselines"]:
        f = " / ".join(f"{100 * b[s]['ents_f']:.2f}" for s in splits)
        wps = statistics.median(r["words_per_s"][b["name"]] for r in result["seeds"])
        lines.append(f"| | {b['name']} (`{b['path']}`) | {f} | | | {wps:,.0f} | |")
    rows = result["seeds"]
    lines += ["", f"Medians over the {len(rows)} seeds (range):", ""]
    for kind in ("distilled", "undistilled"):
        f = " / ".join(_median_range(_values(rows, kind, s, "ents_f")) for s in splits)
        lines.append(f"- {kind}: entity F {f}; token agreement "
                     f"{_median_range(_values(rows, kind, 'agreement', 'tokens'))}, entity "
                     f"agreement F {_median_range(_values(rows, kind, 'agreement', 'ents_f'))}")
    ratio = [r["words_per_s"]["distilled"] / r["words_per_s"]["undistilled"] for r in rows]
    teacher_ratio = [r["words_per_s"]["distilled"] / r["words_per_s"]["teacher"] for r in rows]
    lines.append(f"- words/s, student / undistilled: {_median_range(ratio, 1.0)}; student / "
                 f"teacher: {_median_range(teacher_ratio, 1.0)} (student and undistilled model "
                 "have the same architecture: their ratio shows the timing noise)")
    train_s = [r[k]["train_s"] for r in rows for k in ("distilled", "undistilled")]
    if all(t is not None for t in train_s):
        lines.append(f"- training: {sum(train_s) * result['threads'] / 3600:.2f} core-hours for these "
                     f"{len(train_s)} models ({result['threads']} BLAS thread(s) each)")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="teacher pipeline (e.g. an ensemble)")
    p.add_argument("--config", default="configs/lstm.cfg", help="the students' training config")
    p.add_argument("--seeds", type=int, nargs="+", default=[2, 3], help="one student per seed")
    p.add_argument("--dev", default="corpus/dev.spacy", help="gold DocBin; agreement and speed")
    p.add_argument("--test", default=None, help="another gold DocBin to score")
    p.add_argument("--teacher-weight", type=float, default=1.0, help="as the command's")
    p.add_argument("--unlabelled", nargs="*", default=[], help="raw text for the students")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (training and timing)")
    p.add_argument("--speed-rounds", type=int, default=3, help="timed passes per model")
    p.add_argument("--cache", default="benchmarks/cache/distill", help="trained models")
    p.add_argument("--out", default="benchmarks/results/distill", help="writes OUT.md and OUT.json")
    p.add_argument("--note", default=None, help="how the teacher was made, for the report")
    p.add_argument("--baselines", nargs="*", default=[],
                   help="NAME=PATH of other trained pipelines to score and time beside them")
    p.add_argument("overrides", nargs="*", help="after --: config overrides for both trainings")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):
        result = run(args)
    report = {"meta": {"command": _common.command_line("distill.py", argv), "note": args.note,
                       "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                       "machine": _common.machine_facts()},
              "result": result}
    print(_common.write_report(_common.repo_path(args.out), report, render))
    return report


if __name__ == "__main__":
    main()
