"""How much an ensemble of `rnn_ner` models (e.g. the seeds of one config)
would add over its members: the mean of their emissions and CRF scores,
decoded by the component's own constrained Viterbi, scored beside each
member on the same docs.

    python benchmarks/seed_ensemble.py DATA.spacy MODEL [MODEL ...] --out OUT

The input docs get the reference's tokens and sentence starts (as
`conll03.py --sents gold`). This measures the ceiling of distilling the
ensemble into one model; it is not a component.
"""
import argparse
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

COMPONENT = "rnn_ner"


def mean_chain(chains):
    """The chain whose scores are the mean of the members' (same tags)."""
    from spacy_rnn_ner.crf import Chain

    tags = list(chains[0].tags)
    if any(list(c.tags) != tags for c in chains):
        raise SystemExit("the models have different tags: train them on the same labels")
    return Chain(tags, *(numpy.mean([numpy.asarray(getattr(c, k)) for c in chains], axis=0)
                         for k in ("transitions", "start", "end")))


def member_scores(nlp, docs) -> Dict[str, Any]:
    """(emissions per doc, chain) of one pipeline's `rnn_ner` on `docs`."""
    ner = nlp.get_pipe(COMPONENT)
    scores = ner.predict(docs)
    return {"emissions": [numpy.asarray(e) for e in ner.loss.emissions(scores)],
            "chain": ner.loss.chain()}


def decode_docs(chain, docs, emissions) -> None:
    """Set each doc's entities from the best valid path of `emissions`."""
    from spacy_rnn_ner.decode import decode, sentence_breaks

    results = decode(numpy, chain, docs, emissions, None,
                     [sentence_breaks(doc) for doc in docs], with_probs=False)
    for doc, result in zip(docs, results):
        doc.set_ents(result.spans, default="outside")


def score(docs, refs) -> Dict[str, float]:
    from spacy.scorer import Scorer
    from spacy.training import Example

    s = Scorer.score_spans([Example(d, r) for d, r in zip(docs, refs)], "ents")
    return {"p": s["ents_p"], "r": s["ents_r"], "f": s["ents_f"]}


def run(data: Path, models: Sequence[Path]) -> Dict[str, Any]:
    import spacy
    from spacy.tokens import Doc, DocBin

    nlps = [spacy.load(m) for m in models]
    vocab = nlps[0].vocab
    refs = list(DocBin().from_disk(data).get_docs(vocab))

    def inputs() -> List[Doc]:
        return [Doc(vocab, words=[t.text for t in r], spaces=[bool(t.whitespace_) for t in r],
                    sent_starts=[bool(t.is_sent_start) for t in r]) for r in refs]

    members, rows = [], []
    for model, nlp in zip(models, nlps):
        got = member_scores(nlp, inputs())
        members.append(got)
        docs = inputs()
        decode_docs(got["chain"], docs, got["emissions"])
        rows.append({"model": _common.show(model), **score(docs, refs)})
    emissions = [numpy.mean([m["emissions"][i] for m in members], axis=0) for i in range(len(refs))]
    docs = inputs()
    decode_docs(mean_chain([m["chain"] for m in members]), docs, emissions)
    return {"data": _common.show(data), "docs": len(refs), "members": rows,
            "ensemble": score(docs, refs)}


def render(report: Dict[str, Any]) -> str:
    meta, res = report["meta"], report["result"]
    fs = [m["f"] for m in res["members"]]
    lines = [
        "# An ensemble of rnn_ner models against its members",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}  ",
        f"Data: `{res['data']}` ({res['docs']} docs; the reference's tokens and sentence starts "
        "on the input)",
        "",
        "The ensemble decodes the mean of the members' emissions and CRF scores with the "
        "component's constrained Viterbi. Entity P/R/F in %, spaCy's scorer.",
        "",
        "| Model | P | R | F |",
        "|:--|--:|--:|--:|",
    ]
    for m in res["members"]:
        lines.append(f"| `{m['model']}` | {100 * m['p']:.2f} | {100 * m['r']:.2f} | {100 * m['f']:.2f} |")
    e = res["ensemble"]
    lines += [f"| ensemble of {len(fs)} | {100 * e['p']:.2f} | {100 * e['r']:.2f} | **{100 * e['f']:.2f}** |",
              "", f"Ensemble F minus the members' median F: {100 * (e['f'] - statistics.median(fs)):+.2f}.", ""]
    return "\n".join(lines)


def main(argv=None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="a .spacy file with gold entities")
    p.add_argument("models", nargs="+", help="trained pipelines with an rnn_ner component")
    p.add_argument("--out", default="benchmarks/results/seed-ensemble", help="writes OUT.md and OUT.json")
    args = p.parse_args(argv)
    import datetime

    result = run(_common.repo_path(args.data), [_common.repo_path(m) for m in args.models])
    report = {"meta": {"command": _common.command_line("seed_ensemble.py", sys.argv[1:] if argv is None else argv),
                       "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")},
              "result": result}
    _common.write_report(_common.repo_path(args.out), report, render)
    return report


if __name__ == "__main__":
    main()
