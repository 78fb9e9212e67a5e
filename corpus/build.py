#!/usr/bin/env python
"""Convert the corpus source files (``[span](LABEL)`` markup) to spaCy DocBin files.

Usage::

    python corpus/build.py                 # corpus/{train,dev,handwritten}.txt -> corpus/*.spacy
    python corpus/build.py --out-dir /tmp/c

Markup (see corpus/README.md): one sentence per line; entities are written as
``[span text](LABEL)`` with LABEL in PER, ORG, LOC, MISC; ``\\[``, ``\\]`` and
``\\\\`` stand for literal characters; lines starting with ``#`` and blank lines
are skipped.  Each sentence becomes its own Doc, tokenized by
``spacy.blank("en")``; every entity must cover whole tokens, otherwise the
build stops with an error naming the file and line.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

LABELS = ("PER", "ORG", "LOC", "MISC")
HERE = Path(__file__).resolve().parent
# train and dev come from make_corpus.py; handwritten is the hand-written
# evaluation set (never trained on), the honest measure of generalisation.
SPLITS = ("train", "dev", "handwritten")


class MarkupError(ValueError):
    """A source line is malformed or an entity does not align with tokens."""


def parse_markup(line: str) -> tuple[str, list[tuple[int, int, str]]]:
    """Return the plain text of a marked-up line and its (start, end, label) spans."""
    text: list[str] = []
    spans: list[tuple[int, int, str]] = []
    n = 0  # length of the plain text built so far
    start: int | None = None
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            if i + 1 >= len(line) or line[i + 1] not in "[]\\":
                raise MarkupError(f"bad escape at column {i + 1}: only \\[ \\] \\\\ are allowed")
            text.append(line[i + 1])
            n += 1
            i += 2
            continue
        if ch == "[":
            if start is not None:
                raise MarkupError(f"nested '[' at column {i + 1}")
            start = n
            i += 1
            continue
        if ch == "]":
            if start is None:
                raise MarkupError(f"unmatched ']' at column {i + 1} (escape it as \\])")
            if not line.startswith("(", i + 1):
                raise MarkupError(f"']' at column {i + 1} is not followed by '(LABEL)'")
            close = line.find(")", i + 2)
            if close == -1:
                raise MarkupError(f"unterminated label after column {i + 1}")
            label = line[i + 2:close]
            if label not in LABELS:
                raise MarkupError(f"unknown label {label!r} at column {i + 3}; expected one of {', '.join(LABELS)}")
            span_text = "".join(text)[start:n]
            if not span_text:
                raise MarkupError(f"empty entity before column {i + 1}")
            if span_text != span_text.strip():
                raise MarkupError(f"entity {span_text!r} has leading/trailing whitespace")
            spans.append((start, n, label))
            start = None
            i = close + 1
            continue
        text.append(ch)
        n += 1
        i += 1
    if start is not None:
        raise MarkupError("unclosed '[' (escape a literal bracket as \\[)")
    return "".join(text), spans


def parse_line(nlp: Language, line: str) -> Doc:
    """Parse one marked-up sentence into a Doc with ``doc.ents`` set."""
    text, spans = parse_markup(line.rstrip("\r\n"))
    if not text.strip():
        raise MarkupError("empty sentence")
    doc = nlp.make_doc(text)
    ents = []
    for start, end, label in spans:
        span = doc.char_span(start, end, label=label, alignment_mode="strict")
        if span is None:
            toks = [t.text for t in doc if t.idx < end and t.idx + len(t) > start]
            raise MarkupError(
                f"entity {text[start:end]!r} ({label}, chars {start}-{end}) does not align "
                f"with token boundaries; overlapping tokens: {toks}")
        ents.append(span)
    try:
        doc.ents = ents
    except ValueError as err:  # overlapping spans
        raise MarkupError(f"invalid entities: {err}") from None
    return doc


def read_docs(nlp: Language, src_path: Path) -> list[Doc]:
    docs = []
    with open(src_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                docs.append(parse_line(nlp, line))
            except MarkupError as err:
                raise MarkupError(f"{src_path}:{lineno}: {err}\n    {line.rstrip()}") from None
    if not docs:
        raise MarkupError(f"{src_path}: no sentences found")
    return docs


def stats(docs) -> dict:
    labels = Counter(ent.label_ for doc in docs for ent in doc.ents)
    return {"sentences": len(docs), "tokens": sum(len(d) for d in docs),
            "entities": sum(labels.values()), "labels": {lab: labels.get(lab, 0) for lab in LABELS},
            "no_entity": sum(1 for d in docs if not d.ents)}


def format_stats(name: str, s: dict) -> str:
    per_label = "  ".join(f"{lab} {n}" for lab, n in s["labels"].items())
    return (f"{name}: {s['sentences']} sentences, {s['tokens']} tokens, {s['entities']} entities "
            f"({per_label}); {s['no_entity']} sentences without entities")


def build(src_path, out_path) -> int:
    """Convert one source file to a DocBin; returns the number of docs written."""
    src_path, out_path = Path(src_path), Path(out_path)
    nlp = spacy.blank("en")
    docs = read_docs(nlp, src_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(attrs=["ORTH", "ENT_IOB", "ENT_TYPE"], docs=docs).to_disk(out_path)
    # round trip: what we wrote must load back identically
    back = list(DocBin().from_disk(out_path).get_docs(nlp.vocab))
    if [(d.text, [(e.start_char, e.end_char, e.label_) for e in d.ents]) for d in back] != \
       [(d.text, [(e.start_char, e.end_char, e.label_) for e in d.ents]) for d in docs]:
        raise RuntimeError(f"{out_path}: DocBin round trip changed the data")
    print(format_stats(src_path.name, stats(docs)))
    return len(docs)


def entity_overlap(train_docs, dev_docs, name: str = "dev") -> str:
    """How many `name` entity strings (with their label) were already seen in train."""
    seen = {(e.text, e.label_) for d in train_docs for e in d.ents}
    dev = [(e.text, e.label_) for d in dev_docs for e in d.ents]
    uniq = set(dev)
    occ_seen = sum(1 for x in dev if x in seen)
    uniq_seen = sum(1 for x in uniq if x in seen)
    lines = [f"{name} entities seen in train: {occ_seen}/{len(dev)} mentions "
             f"({occ_seen / len(dev):.1%}), {uniq_seen}/{len(uniq)} distinct strings "
             f"({uniq_seen / len(uniq):.1%}); unseen mentions: {1 - occ_seen / len(dev):.1%}"]
    for lab in LABELS:
        m = [x for x in dev if x[1] == lab]
        if m:
            u = sum(1 for x in m if x not in seen)
            lines.append(f"  {lab}: {u}/{len(m)} {name} mentions unseen ({u / len(m):.1%})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Build corpus/{train,dev,handwritten}.spacy from the .txt sources.")
    ap.add_argument("--src-dir", type=Path, default=HERE,
                    help="folder with train.txt, dev.txt and handwritten.txt (default: next to this script)")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="where to write the .spacy files (default: --src-dir)")
    args = ap.parse_args(argv)
    out_dir = args.out_dir or args.src_dir
    try:
        for split in SPLITS:
            build(args.src_dir / f"{split}.txt", out_dir / f"{split}.spacy")
    except MarkupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    nlp = spacy.blank("en")
    docs = {s: list(DocBin().from_disk(out_dir / f"{s}.spacy").get_docs(nlp.vocab)) for s in SPLITS}
    for split in SPLITS[1:]:
        print(entity_overlap(docs["train"], docs[split], split))
    print(f"wrote {', '.join(str(out_dir / f'{s}.spacy') for s in SPLITS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
