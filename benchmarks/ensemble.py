"""Ensembles of trained `rnn_ner` pipelines (`python -m spacy_rnn_ner ensemble`)
against their members and other systems, on CoNLL-2003 dev (and test).

    python benchmarks/ensemble.py --models M1 M2 M3 M4 M5 M6 --size 3 6 \\
        --dev DEV.spacy [--test TEST.spacy --allow-test] --train TRAIN.spacy \\
        [--baselines NAME=PATH ...] --out benchmarks/results/conll03-ensemble

For each --size, the models are joined in consecutive groups of that size
(M1-M3, M4-M6; then M1-M6), each group by the component's own
`join_pipelines`. Every member (once), ensemble and baseline is scored with
the gold tokens and sentence starts (as `conll03.py --sents gold`): entity
P/R/F, F per type and over unseen mentions (text never an entity in TRAIN).
Speed: words per second of each ensemble and of its first member over the
same docs, timed alternately in this process, so that the ratio holds on a
noisy machine.
"""
import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402
import generalisation as gen  # noqa: E402

LABELS = ("LOC", "MISC", "ORG", "PER")


def score(nlp, splits: Dict[str, List], seen) -> Dict[str, Any]:
    """Entity scores of `nlp` on each split (gold sentence starts)."""
    return {name: gen.score_conll(nlp, golds, seen, gen.BATCH_SIZE) for name, golds in splits.items()}


def words_per_s(nlp, golds: Sequence) -> float:
    """Words per second of one pass over `golds` (gold tokens and sentence starts)."""
    start = time.perf_counter()
    gen.predict(nlp, golds)
    return sum(len(doc) for doc in golds) / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import spacy

    from spacy_rnn_ner.ensemble import join_pipelines

    models = [_common.repo_path(m) for m in args.models]
    for size in args.size:
        if len(models) % size or size < 2:
            raise SystemExit(f"--size {size}: need groups of at least 2, and {len(models)} "
                             "models to split into groups of that size")
    vocab = spacy.blank("en").vocab
    train = gen.load_docbin(_common.repo_path(args.train), vocab)
    seen = gen.seen_texts(train)
    paths = {"dev": _common.repo_path(args.dev)}
    if args.test:
        paths["test"] = _common.repo_path(args.test)

    def splits(nlp) -> Dict[str, List]:
        return {name: gen.load_docbin(path, nlp.vocab) for name, path in paths.items()}

    log = _common.logger("ensemble")
    members: Dict[Path, Dict[str, Any]] = {}
    for path in models:
        if path not in members:
            nlp = spacy.load(path)
            members[path] = {"path": _common.show(path), **score(nlp, splits(nlp), seen)}
            log(f"member {_common.show(path)}: dev F {100 * members[path]['dev']['f']:.2f}")
    groups = []
    for size in args.size:
        for g in range(0, len(models), size):
            group = models[g:g + size]
            joined = join_pipelines([spacy.load(path) for path in group])
            docs = splits(joined)
            result = score(joined, docs, seen)
            log(f"ensemble of {size}: dev F {100 * result['dev']['f']:.2f}")
            timing_docs = docs[list(paths)[-1]]
            single = spacy.load(group[0])
            single_wps, joined_wps = [], []
            for _ in range(args.speed_rounds):
                single_wps.append(words_per_s(single, timing_docs))
                joined_wps.append(words_per_s(joined, timing_docs))
            groups.append({"size": size, "members": [members[path] for path in group],
                           "ensemble": result,
                           "words_per_s": {"member": max(single_wps), "ensemble": max(joined_wps)}})
    baselines = []
    for name, path in _common.parse_models(args.baselines or []):
        nlp = spacy.load(_common.repo_path(path))
        baselines.append({"name": name, "path": _common.show(_common.repo_path(path)),
                          **score(nlp, splits(nlp), seen)})
    return {"sizes": args.size, "members": list(members.values()),
            "splits": {k: _common.show(v) for k, v in paths.items()},
            "train": _common.show(_common.repo_path(args.train)), "groups": groups,
            "baselines": baselines}


def _median_range(values: Sequence[float]) -> str:
    values = [100 * v for v in values]
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def _rows(result: Dict[str, Any], split: str) -> List[Dict[str, Any]]:
    members = [m[split] for m in result["members"]]
    rows = [(f"`rnn_ner`, one model ({len(members)})", members)]
    for size in result["sizes"]:
        ensembles = [g["ensemble"][split] for g in result["groups"] if g["size"] == size]
        rows.append((f"`rnn_ner`, ensembles of {size} ({len(ensembles)})", ensembles))
    by_name: Dict[str, List[Dict[str, Any]]] = {}
    for b in result["baselines"]:
        by_name.setdefault(b["name"], []).append(b[split])
    rows += [(f"{name} ({len(scores)})", scores) for name, scores in by_name.items()]
    return [{"name": name, "scores": scores} for name, scores in rows]


def render(report: Dict[str, Any]) -> str:
    meta, result = report["meta"], report["result"]
    lines = [
        "# rnn_ner ensembles against single models on CoNLL-2003", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}; git {meta['machine']['git']}; {meta['machine']['cpu']}, "
        f"{meta['machine']['cpus_allowed']} CPUs allowed", "",
        f"Each ensemble joins {' or '.join(map(str, result['sizes']))} trained pipelines with "
        "`python -m spacy_rnn_ner ensemble` (the mean of their emission and CRF scores). "
        "Input docs: the gold tokens and sentence starts. "
        "F, P, R in %: median over the models of a row (min–max); "
        f"unseen: mentions whose text is never an entity in `{result['train']}`.", "",
    ]
    for split in result["splits"]:
        lines += [f"## {split} (`{result['splits'][split]}`)", "",
                  "| System (models) | F | P | R | unseen F | " + " | ".join(f"{lab} F" for lab in LABELS) + " |",
                  "|:--|--:|--:|--:|--:|" + "--:|" * len(LABELS)]
        for row in _rows(result, split):
            s = row["scores"]
            cells = [_median_range([x["f"] for x in s]),
                     f"{100 * statistics.median(x['p'] for x in s):.2f}",
                     f"{100 * statistics.median(x['r'] for x in s):.2f}",
                     _median_range([x["unseen"]["f"] for x in s])]
            for lab in LABELS:
                found = [f for f in (gen.type_f(x, lab) for x in s) if f is not None]
                cells.append(f"{100 * statistics.median(found):.2f}" if found else "–")
            lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Each ensemble", "",
              "| Members | member F (" + ", ".join(result["splits"]) + ") | ensemble F | "
              "words/s member / ensemble (ratio) |", "|:--|:--|:--|:--|"]
    for g in result["groups"]:
        member_f = "; ".join(" / ".join(f"{100 * m[s]['f']:.2f}" for s in result["splits"])
                             for m in g["members"])
        ens_f = " / ".join(f"{100 * g['ensemble'][s]['f']:.2f}" for s in result["splits"])
        wps = g["words_per_s"]
        lines.append(f"| {', '.join('`' + m['path'] + '`' for m in g['members'])} | {member_f} | "
                     f"{ens_f} | {wps['member']:,.0f} / {wps['ensemble']:,.0f} "
                     f"({wps['ensemble'] / wps['member']:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="trained rnn_ner pipelines, grouped in order")
    p.add_argument("--size", type=int, nargs="+", default=[3],
                   help="members per ensemble; several sizes, several sets of groups (default 3)")
    p.add_argument("--dev", required=True, help="gold DocBin of dev")
    p.add_argument("--test", default=None, help="gold DocBin of test (needs --allow-test)")
    p.add_argument("--allow-test", action="store_true", help="allow test data: final tables only")
    p.add_argument("--train", required=True, help="gold DocBin the models were trained on (for unseen F)")
    p.add_argument("--baselines", nargs="*", default=None, help="NAME=PATH of other pipelines to score")
    p.add_argument("--speed-rounds", type=int, default=2, help="timed passes per model (best kept)")
    p.add_argument("--out", default="benchmarks/results/conll03-ensemble", help="writes OUT.md and OUT.json")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    gen.check_split(_common.repo_path(args.dev), False, "--dev")
    if args.test:
        gen.check_split(_common.repo_path(args.test), args.allow_test, "--test")
    result = run(args)
    report = {"meta": {"command": _common.command_line("ensemble.py", argv),
                       "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                       "machine": _common.machine_facts()},
              "result": result}
    _common.write_report(_common.repo_path(args.out), report, render)
    return report


if __name__ == "__main__":
    main()
