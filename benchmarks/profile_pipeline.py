"""Where the time of an `rnn_ner` pipeline goes: a cProfile breakdown of
`nlp.pipe` (and optionally `nlp.update`) by part of the model.

    python benchmarks/profile_pipeline.py --model MODEL --docs benchmarks/cache/conll03/test.spacy \\
        --out benchmarks/results/profile

The docs of `--docs` (a DocBin) are rebuilt from their words, spaces and,
with `--sents gold` (the default), their sentence starts, as CoNLL's
sentence-level evaluation gives them; `--sents none` drops the sentence
starts. One pass of `nlp.pipe` runs under cProfile after a warm-up pass;
`--repeats` timed passes without the profiler give the words/s. With
`--update-words N`, `nlp.update` over batches of the same docs (their
reference entities as gold) is profiled too, for N words.

Each part's seconds are wall-clock time measured around the model nodes
that do it (NODE_PARTS below: forward and backprop) and around the
component's decoding, span building, loss and optimizer step, in one pass
after the untimed ones; "rest" is what the parts leave of the pass (the
docs' attributes to arrays, padding, spaCy's own work). A cProfile pass
lists the functions with the most own time. Set BLAS to one thread for
the figures of the issue (`OPENBLAS_NUM_THREADS=1`); the report records the
thread settings it ran with.
"""
import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

log = _common.logger("profile")

# Model nodes timed as one part each, by name (a name ending in "*" is a
# prefix): the first match on the way down the tree; its descendants are
# inside it, so the parts do not nest.
NODE_PARTS: Sequence[Tuple[str, str]] = (
    ("char_cnn", "character CNN"),
    ("rnn", "RNN layer"),
    ("with_array(maxout*", "mixing maxout (embeddings to width)"),
    ("vocab_embed", "word table, hash embeddings, features"),
    ("hashembed", "word table, hash embeddings, features"),
    ("extract_features", "word table, hash embeddings, features"),
    ("static_vectors", "word table, hash embeddings, features"),
    ("linear", "output layer"),
)


class PartTimer:
    """Wall-clock seconds per part: model nodes (forward and backprop) and
    the component's decoding, span building, loss and optimizer step."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self._undo: List[Tuple[Any, str, Any]] = []

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    def timed(self, part: str, fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(part, time.perf_counter() - start)
        return run

    def patch(self, owner: Any, attr: str, part: str) -> None:
        original = getattr(owner, attr)
        self._undo.append((owner, attr, original))
        setattr(owner, attr, self.timed(part, original))

    def wrap_model(self, model) -> None:
        for node in _part_nodes(model):
            func = node._func
            part = node.attrs["_profile_part"]

            def timed_func(m, X, is_train, func=func, part=part):
                start = time.perf_counter()
                Y, backprop = func(m, X, is_train)
                self.add(part, time.perf_counter() - start)
                return Y, self.timed(part, backprop)

            self._undo.append((node, "_func", func))
            node._func = timed_func

    def undo(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


def _part_nodes(model) -> List[Any]:
    found, stack = [], [model]
    while stack:
        node = stack.pop()
        part = next((p for name, p in NODE_PARTS if node.name == name
                     or (name.endswith("*") and node.name.startswith(name[:-1]))), None)
        if part is not None:
            node.attrs["_profile_part"] = part
            found.append(node)
        else:
            stack.extend(node.layers)
    return found


def timed_parts(nlp, run: Callable[[], Any]) -> Tuple[float, List[Dict[str, Any]]]:
    """Run run() with every part of the rnn_ner components timed: the total
    wall-clock seconds and the breakdown (with "rest", what the parts leave)."""
    from spacy_rnn_ner import pipeline

    timer = PartTimer()
    components = [proc for _, proc in nlp.pipeline if isinstance(proc, pipeline.RNNEntityRecognizer)]
    for proc in components:
        timer.wrap_model(proc.model)
        timer.patch(proc, "finish_update", "optimizer step")
        loss_class = proc._loss_class
        timer.patch(loss_class, "get_loss", "training loss (CRF forward-backward)")
    timer.patch(pipeline, "decode", "decoding (Viterbi, probabilities)")
    set_annotations = pipeline.RNNEntityRecognizer.set_annotations
    timer.patch(pipeline.RNNEntityRecognizer, "set_annotations", "_set_annotations")
    try:
        start = time.perf_counter()
        run()
        total = time.perf_counter() - start
    finally:
        timer.undo()
        assert pipeline.RNNEntityRecognizer.set_annotations is set_annotations
    seconds = dict(timer.seconds)
    # set_annotations holds the decoding: the rest of it is span building.
    outer = seconds.pop("_set_annotations", 0.0)
    decoding = seconds.get("decoding (Viterbi, probabilities)", 0.0)
    if outer:
        seconds["span building, doc.set_ents"] = outer - decoding
    rows = [{"part": part, "seconds": s, "share": s / total}
            for part, s in sorted(seconds.items(), key=lambda kv: -kv[1])]
    rest = total - sum(seconds.values())
    rows.append({"part": "rest (tokens to arrays, padding, spaCy)", "seconds": rest,
                 "share": rest / total})
    return total, rows


def input_docs(nlp, path: Path, sents: str, limit: int = 0) -> List[Any]:
    """The docs of a DocBin rebuilt from words and spaces (and sentence
    starts with `sents` "gold"), with their entities on a second copy as
    gold: (input docs, reference docs)."""
    from spacy.tokens import Doc, DocBin

    refs = [doc for doc in DocBin().from_disk(path).get_docs(nlp.vocab) if len(doc)]
    if limit:
        refs = refs[:limit]
    docs = []
    for ref in refs:
        starts = [bool(t.is_sent_start) for t in ref] if sents == "gold" else None
        docs.append(Doc(nlp.vocab, words=[t.text for t in ref],
                        spaces=[bool(t.whitespace_) for t in ref], sent_starts=starts))
    return docs, refs


def copies(docs):
    """Fresh copies, so that every pass starts from docs without entities."""
    return [doc.copy() for doc in docs]


def top_functions(fn, n: int = 15) -> List[Dict[str, Any]]:
    """Run fn() under cProfile: the functions with the most own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:n]
    return [{"function": f"{Path(f).name}:{line}({name})", "own_s": tt, "calls": nc}
            for (f, line, name), (_cc, nc, tt, _ct, _c) in top]


def profile_pipe(nlp, docs, repeats: int) -> Dict[str, Any]:
    n_words = sum(len(doc) for doc in docs)
    list(nlp.pipe(copies(docs)))  # warm-up: lazy allocations
    times = []
    for _ in range(repeats):
        batch = copies(docs)
        start = time.perf_counter()
        list(nlp.pipe(batch))
        times.append(time.perf_counter() - start)
    total, rows = timed_parts(nlp, lambda: list(nlp.pipe(copies(docs))))
    top = top_functions(lambda: list(nlp.pipe(copies(docs))))
    median = statistics.median(times)
    return {"n_docs": len(docs), "n_words": n_words, "timed_s": total, "parts": rows,
            "top": top, "times_s": times, "words_per_s": n_words / median}


def profile_update(nlp, docs, refs, words: int, batch_words: int) -> Dict[str, Any]:
    from spacy.training import Example, minibatch_by_words

    examples = [Example(doc, ref) for doc, ref in zip(copies(docs), refs)]
    optimizer = nlp.resume_training()
    batches = list(minibatch_by_words(examples, size=batch_words, tolerance=0.2))
    nlp.update(batches[0], sgd=optimizer)  # warm-up
    chosen, seen = [], 0
    for batch in batches[1:] * 10:
        if seen >= words:
            break
        chosen.append(batch)
        seen += sum(len(eg.reference) for eg in batch)

    def run():
        for batch in chosen:
            nlp.update(batch, sgd=optimizer, drop=0.1)

    start = time.perf_counter()
    run()
    plain = time.perf_counter() - start
    total, rows = timed_parts(nlp, run)
    top = top_functions(run)
    return {"n_words": seen, "timed_s": total, "parts": rows, "top": top,
            "seconds": plain, "words_per_s": seen / plain}


def render(data: Dict[str, Any]) -> str:
    lines = [f"# Profile of `{data['model']}`", "",
             f"Command: `{data['command']}`", "",
             f"Run of {data['machine']['date']} on {data['machine']['cpu']} "
             f"(load average at start {data['machine']['loadavg']}); thread settings: "
             f"{data['threads']}; RNN compute path: {data['rnn_path']}; docs: "
             f"`{data['docs']}`, sentence starts: {data['sents']}.", ""]
    sections = [("nlp.pipe", data["pipe"])]
    if data.get("update"):
        sections.append(("nlp.update", data["update"]))
    for title, res in sections:
        lines += [f"## `{title}`", "",
                  f"{res['n_words']:,} words; {res['words_per_s']:,.0f} words/s (untimed "
                  f"passes); {res['timed_s']:.2f} s in the timed pass below.", "",
                  "| part | seconds | share |", "|:--|--:|--:|"]
        lines += [f"| {r['part']} | {r['seconds']:.2f} | {100 * r['share']:.0f}% |"
                  for r in res["parts"]]
        lines += ["", "Top functions by own time (cProfile, one more pass):", "",
                  "| function | own s | calls |", "|:--|--:|--:|"]
        lines += [f"| `{r['function']}` | {r['own_s']:.3f} | {r['calls']:,} |" for r in res["top"]]
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a trained pipeline with an rnn_ner component")
    p.add_argument("--docs", required=True, help="a DocBin, e.g. CoNLL-2003 test")
    p.add_argument("--sents", choices=("gold", "none"), default="gold")
    p.add_argument("--limit", type=int, default=0, help="first N docs only")
    p.add_argument("--repeats", type=int, default=3, help="timed passes without the profiler")
    p.add_argument("--update-words", type=int, default=0,
                   help="also profile nlp.update for this many words")
    p.add_argument("--batch-words", type=int, default=1000)
    p.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    import spacy

    nlp = spacy.load(_common.repo_path(args.model))
    docs, refs = input_docs(nlp, _common.repo_path(args.docs), args.sents, args.limit)
    log(f"{len(docs)} docs, {sum(len(d) for d in docs):,} words")
    data: Dict[str, Any] = {
        "command": _common.command_line("profile_pipeline.py", sys.argv[1:] if argv is None else argv),
        "model": args.model, "docs": args.docs, "sents": args.sents,
        "threads": {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        "machine": _common.machine_facts(),
        "rnn_path": _rnn_path(),
        "pipe": profile_pipe(nlp, docs, args.repeats),
    }
    if args.update_words:
        data["update"] = profile_update(nlp, docs, refs, args.update_words, args.batch_words)
    text = render(data)
    if args.out:
        _common.write_report(_common.repo_path(args.out), data, render)
    print(text)
    return data


def _rnn_path() -> str:
    from spacy_rnn_ner.layers import backend_info

    return backend_info()["path"]


if __name__ == "__main__":
    main()
