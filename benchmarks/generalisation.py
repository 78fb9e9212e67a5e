"""How NER models trained on CoNLL-2003 generalise: seen and unseen mentions on
CoNLL dev, and WNUT-17 (social media text) out of domain.

    python benchmarks/conll03.py convert      # once: benchmarks/cache/conll03/*.spacy
    python benchmarks/generalisation.py \\
        --models base=training/a/model-best ner=training/b/model-best

Each model (a spaCy pipeline directory; the entity pipe may be `rnn_ner` or
spaCy's `ner`) runs over the gold tokens of each doc (`Doc(vocab, words,
spaces)` from the gold doc, with no entities), never over re-tokenized text.

* CoNLL dev (`--conll`, a DocBin): overall P/R/F and F per type (spaCy's
  `get_ner_prf`). A mention is *seen* when its lowercased text (tokens joined
  by one space) occurs as a gold entity, of any label, in the training DocBin
  (`--train`), else *unseen*. Recall is split by the gold mentions' class,
  precision by the predicted mentions' class (same rule on the predicted text),
  and F of each part is 2 TP / (gold + predicted) within that part; a correct
  prediction has its gold mention's text, so TP is the same from both sides.
* WNUT-17 (`--wnut` folder, `--wnut-split dev` by default): person -> PER,
  location -> LOC, corporation and group -> ORG. product and creative-work
  have no CoNLL counterpart: those gold mentions are dropped (their tokens
  count as O) and so are predicted MISC, so the score is over PER/LOC/ORG only.
  Skipped, with a message, when the folder is missing.

Choices are made on dev: a CoNLL file named test* and `--wnut-split test` are
refused unless `--allow-test` (final tables only). Writes `OUT.md` and
`OUT.json` (default `benchmarks/results/generalisation`), with the command,
date, versions and machine.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import spacy
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

BATCH_SIZE = 16
CONLL_DEV = "benchmarks/cache/conll03/dev.spacy"
CONLL_TRAIN = "benchmarks/cache/conll03/train.spacy"
WNUT_DIR = "../shared/data/wnut17"
# WNUT-17 type -> CoNLL label; types not here (product, creative-work) are dropped.
WNUT_LABELS = {"person": "PER", "location": "LOC", "corporation": "ORG", "group": "ORG"}
WNUT_KEEP = ("PER", "LOC", "ORG")  # predicted labels scored on WNUT; MISC is dropped
BOM = "\ufeff"

Mention = Tuple[int, int, str]  # start, end, label

log = _common.logger("generalisation")


# --- Seen and unseen mentions ---------------------------------------------------


def mention_key(span: Span) -> str:
    """A mention's text for the seen test: lowercased tokens joined by a space
    (so the docs' unreliable whitespace plays no part)."""
    return " ".join(t.text for t in span).lower()


def seen_texts(docs: Iterable[Doc]) -> Set[str]:
    """The keys of every gold entity in `docs`, any label."""
    return {mention_key(ent) for doc in docs for ent in doc.ents}


def prf(tp: int, n_gold: int, n_pred: int) -> Dict[str, Any]:
    """Counts and P/R/F (NaN where undefined: no predictions, no gold)."""
    nan = float("nan")
    return {"gold": n_gold, "pred": n_pred, "tp": tp,
            "p": tp / n_pred if n_pred else nan,
            "r": tp / n_gold if n_gold else nan,
            "f": 2 * tp / (n_gold + n_pred) if n_gold + n_pred else nan}


def seen_unseen(golds: Sequence[Doc], preds: Sequence[Doc], seen: Set[str]) -> Dict[str, Any]:
    """Gold mentions, predicted mentions and exact matches (start, end and
    label), each counted as seen or unseen by its own text; P/R/F per part."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold docs but {len(preds)} predicted docs")
    counts = {part: {"gold": 0, "pred": 0, "tp": 0} for part in ("seen", "unseen")}
    for i, (gold, pred) in enumerate(zip(golds, preds)):
        if [t.text for t in gold] != [t.text for t in pred]:
            raise ValueError(f"doc {i}: predicted tokens differ from the gold tokens")
        gold_ents = {(e.start, e.end, e.label_) for e in gold.ents}
        for ent in gold.ents:
            part = counts["seen" if mention_key(ent) in seen else "unseen"]
            part["gold"] += 1
        for ent in pred.ents:
            part = counts["seen" if mention_key(ent) in seen else "unseen"]
            part["pred"] += 1
            part["tp"] += (ent.start, ent.end, ent.label_) in gold_ents
    return {name: prf(c["tp"], c["gold"], c["pred"]) for name, c in counts.items()}


# --- WNUT-17 ----------------------------------------------------------------------


def read_conll2(path: Path) -> List[Tuple[List[str], List[str]]]:
    """Sentences (words, tags) of a 2-column TOKEN<TAB>TAG file; any
    whitespace-only line ends a sentence. U+FEFF is removed from tokens
    (dev has `Dubbz\\ufeff`), unless that would leave nothing."""
    sents: List[Tuple[List[str], List[str]]] = []
    words: List[str] = []
    tags: List[str] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf8").split("\n"), 1):
        if not line.strip():
            if words:
                sents.append((words, tags))
                words, tags = [], []
            continue
        token, sep, tag = line.rstrip("\r").rpartition("\t")
        if not sep or not token or not tag.strip():
            raise ValueError(f"{path}:{n}: expected TOKEN<TAB>TAG, got {line!r}")
        words.append(token.replace(BOM, "") or token)
        tags.append(tag.strip())
    if words:
        sents.append((words, tags))
    return sents


def iob_spans(tags: Sequence[str]) -> List[Mention]:
    """Entities of IOB tags (IOB2 or IOB1, the conlleval convention: a run
    that starts at B-X, or at I-X after O or another type), by spaCy's
    `iob_to_biluo` and `biluo_tags_to_spans`."""
    for tag in tags:
        prefix, _, kind = tag.partition("-")
        if prefix not in ("B", "I", "O") or (prefix != "O" and not kind):
            raise ValueError(f"not an IOB tag: {tag!r}")
    doc = Doc(Vocab(), words=["_"] * len(tags))
    spans = biluo_tags_to_spans(doc, iob_to_biluo(list(tags)))
    return [(span.start, span.end, span.label_) for span in spans]


def map_spans(spans: Iterable[Mention], mapping: Dict[str, str] = WNUT_LABELS) -> List[Mention]:
    """Spans relabelled by `mapping`; those of a type not in it are dropped."""
    return [(s, e, mapping[label]) for s, e, label in spans if label in mapping]


def wnut_docs(path: Path, vocab: Vocab) -> Tuple[List[Doc], Dict[str, int]]:
    """Gold docs of a WNUT-17 file with CoNLL labels (every token annotated, the
    dropped mentions as O), and the gold mentions per WNUT type."""
    docs = []
    counts: Dict[str, int] = {}
    for words, tags in read_conll2(path):
        spans = iob_spans(tags)
        for _, _, label in spans:
            counts[label] = counts.get(label, 0) + 1
        iob = ["O"] * len(words)
        for start, end, label in map_spans(spans):
            iob[start:end] = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
        docs.append(Doc(vocab, words=words, ents=iob))
    return docs, dict(sorted(counts.items()))


def keep_labels(preds: Sequence[Doc], labels: Sequence[str] = WNUT_KEEP) -> int:
    """Drop predicted entities whose label is not in `labels`, in place; how many."""
    dropped = 0
    for doc in preds:
        ents = [e for e in doc.ents if e.label_ in labels]
        dropped += len(doc.ents) - len(ents)
        doc.ents = ents
    return dropped


# --- Running a model ------------------------------------------------------------


def predict(nlp, golds: Sequence[Doc], batch_size: int = BATCH_SIZE, sents: bool = True) -> List[Doc]:
    """The pipeline over the gold tokens (no entities); with `sents`, also the
    gold sentence starts where the gold doc has them (CoNLL's sentence-level
    protocol, as `conll03.py --sents gold`)."""
    def bare(g: Doc) -> Doc:
        starts = ([bool(t.is_sent_start) for t in g]
                  if sents and g.has_annotation("SENT_START") else None)
        return Doc(nlp.vocab, words=[t.text for t in g], spaces=[bool(t.whitespace_) for t in g],
                   sent_starts=starts)
    return list(nlp.pipe((bare(g) for g in golds), batch_size=batch_size))


def ner_scores(golds: Sequence[Doc], preds: Sequence[Doc]) -> Dict[str, Any]:
    """spaCy's entity P/R/F, overall and per type."""
    scores = get_ner_prf([Example(p, g) for p, g in zip(preds, golds)])
    nan = float("nan")
    per_type = scores["ents_per_type"] or {}
    return {"p": scores["ents_p"] if scores["ents_p"] is not None else nan,
            "r": scores["ents_r"] if scores["ents_r"] is not None else nan,
            "f": scores["ents_f"] if scores["ents_f"] is not None else nan,
            "per_type": {k: per_type[k] for k in sorted(per_type)}}


def score_conll(nlp, golds: Sequence[Doc], seen: Set[str], batch_size: int,
                sents: bool = True) -> Dict[str, Any]:
    start = time.perf_counter()
    preds = predict(nlp, golds, batch_size, sents)
    result = ner_scores(golds, preds)
    result.update(seen_unseen(golds, preds, seen))
    result["seconds"] = time.perf_counter() - start
    return result


def score_wnut(nlp, golds: Sequence[Doc], batch_size: int) -> Dict[str, Any]:
    start = time.perf_counter()
    preds = predict(nlp, golds, batch_size)
    dropped = keep_labels(preds)
    result = ner_scores(golds, preds)
    result["dropped_pred"] = dropped
    result["seconds"] = time.perf_counter() - start
    return result


def check_split(path: Path, allow_test: bool, what: str) -> None:
    if path.name.startswith("test") and not allow_test:
        raise SystemExit(f"{path}: {what} is test data; choices are made on dev "
                         "(pass --allow-test for final tables only)")


def load_docbin(path: Path, vocab: Vocab) -> List[Doc]:
    if not path.exists():
        raise SystemExit(f"{path} missing: run `python benchmarks/conll03.py convert` first")
    docs = list(DocBin().from_disk(path).get_docs(vocab))
    if not docs:
        raise SystemExit(f"{path}: no docs")
    return docs


# --- Report ---------------------------------------------------------------------


def pct(x: Optional[float]) -> str:
    return "–" if x is None or x != x else f"{100 * x:.2f}"


def type_f(scores: Dict[str, Any], label: str) -> Optional[float]:
    found = scores["per_type"].get(label)
    return found["f"] if found else None


def render(report: Dict[str, Any]) -> str:
    models = report["models"]
    conll = report["conll"]
    wnut = report.get("wnut")
    lines = [
        "# Generalisation: seen and unseen mentions, and out of domain", "",
        f"Generated {report['date']} by `{report['command']}` (git {report['machine']['git']}).", "",
        f"CoNLL: `{conll['data']}`, {conll['docs']} docs, {conll['gold_seen'] + conll['gold_unseen']:,} "
        f"gold mentions, {conll['gold_unseen']:,} of them unseen "
        f"({pct(conll['gold_unseen'] / max(1, conll['gold_seen'] + conll['gold_unseen']))}%): "
        f"their lowercased text is no gold entity (any label) in `{conll['train']}`. "
        + ("The input docs have the gold sentence starts (`--sents gold`, as `conll03.py`)."
           if report.get("sents", "none") == "gold" else
           "The input docs have no sentence starts (`--sents none`)."),
    ]
    if wnut:
        gold = wnut["gold"]
        kept = ", ".join(f"{k} {gold.get(k, 0)} -> {v}" for k, v in WNUT_LABELS.items())
        dropped = ", ".join(f"{k} {v}" for k, v in gold.items() if k not in WNUT_LABELS) or "none"
        lines += ["", f"WNUT-17 {wnut['split']}: `{wnut['data']}`, {wnut['docs']} posts, scored "
                  f"over PER/LOC/ORG only. Gold mentions mapped: {kept}. Dropped, as they have "
                  f"no CoNLL counterpart (their tokens count as O): {dropped}; predicted MISC "
                  "is dropped too. A PER/LOC/ORG prediction on a dropped mention is a false "
                  "positive."]
    else:
        lines += ["", f"WNUT-17: skipped ({report.get('wnut_skipped', 'not run')})."]
    lines += ["", "F, P and R in %. Seen/unseen F: over the gold and predicted mentions of that "
              "part. Overall and per-type figures: spaCy's `get_ner_prf`.", "",
              "| Model | dev F | seen F | unseen F | unseen R | WNUT P | WNUT R | WNUT F "
              "| WNUT PER F | WNUT LOC F | WNUT ORG F |",
              "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for m in models:
        c, w = m["conll"], m.get("wnut")
        cells = [m["name"], pct(c["f"]), pct(c["seen"]["f"]), pct(c["unseen"]["f"]),
                 pct(c["unseen"]["r"])]
        cells += ([pct(w["p"]), pct(w["r"]), pct(w["f"])] + [pct(type_f(w, lab)) for lab in WNUT_KEEP]
                  if w else ["–"] * 6)
        lines.append("| " + " | ".join(cells) + " |")
    labels = sorted({lab for m in models for lab in m["conll"]["per_type"]})
    lines += ["", "CoNLL dev in detail (P / R / F; seen and unseen: predicted / gold mentions):", "",
              "| Model | Path | all | seen | unseen | seen pred/gold | unseen pred/gold | "
              + " | ".join(f"{lab} F" for lab in labels) + " |",
              "|:--|:--|--:|--:|--:|--:|--:|" + "--:|" * len(labels)]
    for m in models:
        c = m["conll"]
        trio = (lambda s: f"{pct(s['p'])} / {pct(s['r'])} / {pct(s['f'])}")
        lines.append(
            f"| {m['name']} | `{m['path']}` | {trio(c)} | {trio(c['seen'])} | {trio(c['unseen'])} | "
            f"{c['seen']['pred']:,} / {c['seen']['gold']:,} | "
            f"{c['unseen']['pred']:,} / {c['unseen']['gold']:,} | "
            + " | ".join(pct(type_f(c, lab)) for lab in labels) + " |")
    if wnut:
        lines += ["", f"WNUT-17 {wnut['split']} per type (P / R / F), and the predicted MISC dropped:", "",
                  "| Model | " + " | ".join(WNUT_KEEP) + " | MISC dropped |",
                  "|:--|" + "--:|" * (len(WNUT_KEEP) + 1)]
        for m in models:
            w = m["wnut"]
            cells = []
            for lab in WNUT_KEEP:
                s = w["per_type"].get(lab)
                cells.append(f"{pct(s['p'])} / {pct(s['r'])} / {pct(s['f'])}" if s else "–")
            lines.append(f"| {m['name']} | " + " | ".join(cells) + f" | {w['dropped_pred']:,} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="NAME=PATH of each pipeline")
    p.add_argument("--conll", default=CONLL_DEV, help=f"gold DocBin of CoNLL dev (default {CONLL_DEV})")
    p.add_argument("--train", default=CONLL_TRAIN,
                   help=f"gold DocBin the models were trained on: the seen mentions (default {CONLL_TRAIN})")
    p.add_argument("--wnut", default=WNUT_DIR, help=f"WNUT-17 folder, read by path (default {WNUT_DIR})")
    p.add_argument("--wnut-split", default="dev", choices=["dev", "test"])
    p.add_argument("--allow-test", action="store_true",
                   help="allow test data (CoNLL test*, --wnut-split test): final tables only")
    p.add_argument("--sents", default="gold", choices=["gold", "none"],
                   help="CoNLL input docs get the gold sentence starts (gold, as conll03.py) or none")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--out", default="benchmarks/results/generalisation", help="path without suffix")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    models = _common.parse_models(args.models)
    conll_path, train_path = _common.repo_path(args.conll), _common.repo_path(args.train)
    check_split(conll_path, args.allow_test, "--conll")
    wnut_path: Optional[Path] = _common.repo_path(args.wnut) / f"{args.wnut_split}.conll"
    check_split(wnut_path, args.allow_test, "--wnut-split")
    wnut_skipped = None
    if not wnut_path.exists():
        wnut_skipped = f"{_common.show(wnut_path)} not found"
        log(f"WNUT-17: {wnut_skipped}, skipping it")
        wnut_path = None
    facts = _common.machine_facts()
    seen = seen_texts(load_docbin(train_path, Vocab()))
    report: Dict[str, Any] = {
        "command": _common.command_line("generalisation.py", argv),
        "date": facts["date"],
        "machine": facts,
        "models": [],
        "sents": args.sents,
    }
    for name, path in models:
        nlp = spacy.load(_common.repo_path(path))
        golds = load_docbin(conll_path, nlp.vocab)
        if "conll" not in report:
            split = seen_unseen(golds, golds, seen)
            report["conll"] = {"data": args.conll, "train": args.train, "docs": len(golds),
                               "train_texts": len(seen), "gold_seen": split["seen"]["gold"],
                               "gold_unseen": split["unseen"]["gold"]}
        result: Dict[str, Any] = {"name": name, "path": path, "pipeline": nlp.pipe_names,
                                  "conll": score_conll(nlp, golds, seen, args.batch_size,
                                                        args.sents == "gold")}
        c = result["conll"]
        log(f"{name}: CoNLL F {pct(c['f'])}, seen F {pct(c['seen']['f'])}, "
            f"unseen F {pct(c['unseen']['f'])} ({c['seconds']:.1f} s)")
        if wnut_path is not None:
            wgolds, counts = wnut_docs(wnut_path, nlp.vocab)
            report.setdefault("wnut", {"data": _common.show(wnut_path), "split": args.wnut_split,
                                       "docs": len(wgolds), "gold": counts,
                                       "scored_labels": list(WNUT_KEEP)})
            result["wnut"] = score_wnut(nlp, wgolds, args.batch_size)
            w = result["wnut"]
            log(f"{name}: WNUT-17 {args.wnut_split} P {pct(w['p'])} R {pct(w['r'])} "
                f"F {pct(w['f'])} ({w['seconds']:.1f} s)")
        report["models"].append(result)
    if wnut_skipped:
        report["wnut_skipped"] = wnut_skipped
    print(_common.write_report(_common.repo_path(args.out), report, render))


if __name__ == "__main__":
    main()
