"""Document-level label consistency of `rnn_ner` models on dev data.

    python benchmarks/doc_consistency.py benchmarks/cache/conll03-doc/dev.spacy \\
        --models base=training/a/model-best other=training/b/model-best

Each model runs over the gold docs of the DocBin (the gold tokens, with no
entities, are the input). A *repeated string* is an entity text that occurs two
or more times as a gold entity in one doc; it is counted once per doc. Each of
its gold mentions gets the label of the predicted entity with exactly the same
start and end, or "O" when there is none (missed, or wrong boundaries). Per
model:

- same label: the share of repeated strings whose mentions are all predicted
  with one entity label (all "O" does not count: it is consistently missed);
- gold label: the share whose mentions are all predicted with their gold label;
- entity precision, recall and F over all entities (spaCy's `get_ner_prf`).

The gold data's own same-label rate (the share of repeated strings whose gold
mentions all carry one label) is the ceiling for the first figure. With two or
more models, the strings that one model gets all right (gold label) and the
first does not, and the other way round, are counted: the paired difference,
with an exact sign test (McNemar) on the two counts.

For choices, dev data only: the script refuses a file named test*. Writes
`OUT.md` and `OUT.json` (default `benchmarks/results/doc-consistency`), with
the command and date.
"""
import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import spacy
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, DocBin
from spacy.training import Example

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

OUTSIDE = "O"
BATCH_SIZE = 16

Mention = Tuple[int, int, str]  # start, end, gold label

log = _common.logger("doc_consistency")


# --- Measures ---------------------------------------------------------------------


def repeated_strings(gold: Doc) -> Dict[str, List[Mention]]:
    """Gold mentions of each entity text that occurs 2+ times as a gold entity
    in the doc, in doc order."""
    mentions: Dict[str, List[Mention]] = defaultdict(list)
    for ent in gold.ents:
        mentions[ent.text].append((ent.start, ent.end, ent.label_))
    return {text: found for text, found in mentions.items() if len(found) >= 2}


def consistency(golds: Sequence[Doc], preds: Sequence[Doc]) -> Dict[str, Any]:
    """Counts and rates of the repeated strings (see the module docstring), and
    per string (doc index, text) whether all its mentions got the gold label."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold docs but {len(preds)} predicted docs")
    n_strings = n_mentions = gold_same = same = all_gold = 0
    outcomes: Dict[str, bool] = {}
    for i, (gold, pred) in enumerate(zip(golds, preds)):
        if [t.text for t in gold] != [t.text for t in pred]:
            raise ValueError(f"doc {i}: predicted tokens differ from the gold tokens")
        predicted = {(e.start, e.end): e.label_ for e in pred.ents}
        for text, mentions in repeated_strings(gold).items():
            labels = [predicted.get((start, end), OUTSIDE) for start, end, _ in mentions]
            right = all(label == g for label, (_, _, g) in zip(labels, mentions))
            n_strings += 1
            n_mentions += len(mentions)
            gold_same += len({g for _, _, g in mentions}) == 1
            same += len(set(labels)) == 1 and labels[0] != OUTSIDE
            all_gold += right
            outcomes[f"{i}\t{text}"] = right
    rate = (lambda n: n / n_strings if n_strings else float("nan"))
    return {
        "strings": n_strings,
        "mentions": n_mentions,
        "gold_same_label": gold_same,
        "same_label": same,
        "gold_label": all_gold,
        "gold_same_label_rate": rate(gold_same),
        "same_label_rate": rate(same),
        "gold_label_rate": rate(all_gold),
        "outcomes": outcomes,
    }


def sign_test(a: int, b: int) -> float:
    """Two-sided exact sign test (McNemar) on `a` and `b` discordant pairs:
    the chance of a split at least this uneven if each pair were a coin toss."""
    n = a + b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a, b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(first: Dict[str, bool], other: Dict[str, bool]) -> Dict[str, Any]:
    """Strings that `other` gets all right (gold label) and `first` does not,
    the other way round, and the sign test's p on the two counts."""
    if first.keys() != other.keys():
        raise ValueError("the two models were scored on different strings")
    only_other = sum(other[k] and not first[k] for k in first)
    only_first = sum(first[k] and not other[k] for k in first)
    return {"only_other": only_other, "only_first": only_first,
            "p_sign_test": sign_test(only_other, only_first)}


# --- Running a model ------------------------------------------------------------


def load_gold(path: Path, vocab) -> List[Doc]:
    if Path(path).name.startswith("test"):
        raise SystemExit(f"{path}: this script measures dev data only (choices are made on dev)")
    docs = list(DocBin().from_disk(path).get_docs(vocab))
    if not docs:
        raise SystemExit(f"{path}: no docs")
    return docs


def predict(nlp, golds: Sequence[Doc], batch_size: int = BATCH_SIZE) -> List[Doc]:
    """The pipeline over the gold tokens (no entities)."""
    bare = (Doc(nlp.vocab, words=[t.text for t in g], spaces=[bool(t.whitespace_) for t in g])
            for g in golds)
    return list(nlp.pipe(bare, batch_size=batch_size))


def score_model(nlp, golds: Sequence[Doc], batch_size: int = BATCH_SIZE) -> Dict[str, Any]:
    """Consistency and entity P/R/F of `nlp` on `golds`, and the seconds taken."""
    start = time.perf_counter()
    preds = predict(nlp, golds, batch_size)
    seconds = time.perf_counter() - start
    prf = get_ner_prf([Example(p, g) for p, g in zip(preds, golds)])
    result = consistency(golds, preds)
    result.update({"ents_p": prf["ents_p"], "ents_r": prf["ents_r"], "ents_f": prf["ents_f"],
                   "seconds": seconds})
    return result


# --- Report ---------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def render(report: Dict[str, Any]) -> str:
    models = report["models"]
    first = models[0]
    lines = [
        "# Document-level label consistency", "",
        f"Generated {report['date']} by `{report['command']}` (git {report['machine']['git']}).", "",
        f"Data: `{report['data']}`, {report['docs']} docs. A repeated string is an entity text "
        "that occurs 2+ times as a gold entity in one doc (counted once per doc); each gold "
        "mention gets the label of the predicted entity with exactly its boundaries, or O. "
        "Same label: all mentions predicted with one entity label (not O). Gold label: all "
        "mentions predicted with their gold label. P/R/F: all entities (spaCy's `get_ner_prf`).",
        "",
        f"Repeated strings: {first['strings']:,} with {first['mentions']:,} mentions; in the "
        f"gold data {pct(first['gold_same_label_rate'])}% of them have one label (the ceiling "
        "for same label).", "",
        "| Model | Path | Same label % | Gold label % | P | R | F |",
        "|:--|:--|--:|--:|--:|--:|--:|",
    ]
    for m in models:
        lines.append(
            f"| {m['name']} | `{m['path']}` | {pct(m['same_label_rate'])} | "
            f"{pct(m['gold_label_rate'])} | {pct(m['ents_p'])} | {pct(m['ents_r'])} | "
            f"{pct(m['ents_f'])} |")
    if len(models) > 1:
        lines += ["", f"Paired, against {first['name']} (repeated strings all given their gold label):",
                  "", f"| Model | right only with it | right only with {first['name']} | "
                  "sign test p | gold label, difference (points) | F, difference (points) |",
                  "|:--|--:|--:|--:|--:|--:|"]
        for m in models[1:]:
            p = m["paired"]
            lines.append(
                f"| {m['name']} | {p['only_other']} | {p['only_first']} | {p['p_sign_test']:.3g} | "
                f"{100 * (m['gold_label_rate'] - first['gold_label_rate']):+.2f} | "
                f"{100 * (m['ents_f'] - first['ents_f']):+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="gold DocBin of dev data")
    p.add_argument("--models", nargs="+", required=True,
                   help="NAME=PATH of each pipeline; the first is the reference")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--out", default="benchmarks/results/doc-consistency", help="path without suffix")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    models = _common.parse_models(args.models)
    facts = _common.machine_facts()
    results = []
    golds: List[Doc] = []
    for name, path in models:
        nlp = spacy.load(_common.repo_path(path))
        golds = load_gold(_common.repo_path(args.data), nlp.vocab)
        log(f"{name}: {len(golds)} docs")
        result = score_model(nlp, golds, args.batch_size)
        result.update({"name": name, "path": path})
        log(f"{name}: same label {pct(result['same_label_rate'])}%, gold label "
            f"{pct(result['gold_label_rate'])}%, F {pct(result['ents_f'])}")
        results.append(result)
    for result in results[1:]:
        result["paired"] = paired(results[0]["outcomes"], result["outcomes"])
    for result in results:
        result.pop("outcomes")
    report = {
        "command": _common.command_line("doc_consistency.py", argv),
        "date": facts["date"],
        "data": args.data,
        "docs": len(golds),
        "machine": facts,
        "models": results,
    }
    print(_common.write_report(_common.repo_path(args.out), report, render))


if __name__ == "__main__":
    main()
