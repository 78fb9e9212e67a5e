"""Pipeline speed of `rnn_ner` against spaCy's `ner`, side by side in one
process: eval words/s on CoNLL-2003 test as 10-sentence docs and as whole
articles, training words/s, an ensemble of N copies of the model, and the
time and memory of one long doc (`--long-doc-model`).

    python benchmarks/conll03.py convert                       # 10-sentence docs
    python benchmarks/conll03.py convert --n-sents 0 --workdir benchmarks/cache/conll03-articles
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py \\
        --train-steps 400 --out benchmarks/results/pipeline-speed

With `--train-steps N` both systems are first trained for N steps on the
converted training set (`configs/conll03.cfg` and `spacy init config -p
ner -o efficiency`) into `benchmarks/cache/pipeline-speed/`; otherwise give
`--rnn-model` and `--ner-model`. Speed hardly depends on the weights, so a
few hundred steps are enough (the number of entities found changes the
span-building work a little).

Each doc setting runs `--repeats` passes of `nlp.pipe` per system,
alternating the systems (and the ensemble); the figure is the median
words/s and the ratio is ours over spaCy's `ner` from the same run. The
docs are rebuilt from the DocBin's words and spaces (and sentence starts
where the setting says so), so tokenization is not timed. Training
words/s: `nlp.update` over the same batches of about `--batch-words`
words of the training docs, after one warm-up batch, alternating the
systems by round.
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402
from profile_pipeline import copies, input_docs  # noqa: E402

log = _common.logger("pipeline_speed")
CACHE = _common.REPO / "benchmarks" / "cache" / "pipeline-speed"
SETTINGS = (
    # (name, DocBin argument, sentence starts)
    ("10-sentence docs, gold sentence starts", "docs", "gold"),
    ("whole articles, gold sentence starts", "articles", "gold"),
    ("whole articles, no sentence starts", "articles", "none"),
)


def train_models(args) -> Dict[str, str]:
    """Train both systems for `--train-steps` steps; their model-last paths."""
    CACHE.mkdir(parents=True, exist_ok=True)
    ner_cfg = CACHE / "ner-efficiency.cfg"
    subprocess.run([sys.executable, "-m", "spacy", "init", "config", str(ner_cfg), "-l", "en",
                    "-p", "ner", "-o", "efficiency", "--force"], check=True, capture_output=True)
    configs = {"rnn_ner": str(_common.repo_path(args.config)), "ner": str(ner_cfg)}
    paths = {}
    for name, cfg in configs.items():
        out = CACHE / name
        log(f"training {name} for {args.train_steps} steps")
        subprocess.run(
            [sys.executable, "-m", "spacy", "train", cfg, "--output", str(out),
             "--paths.train", str(_common.repo_path(args.train)),
             "--paths.dev", str(_common.repo_path(args.dev)),
             "--training.max_steps", str(args.train_steps),
             "--training.eval_frequency", str(args.train_steps)],
            check=True, capture_output=True,
        )
        paths[name] = str(out / "model-last")
    return paths


def eval_speed(nlps: Dict[str, Any], path: Path, sents: str, repeats: int) -> Dict[str, Any]:
    # Each pipeline gets docs of its own vocab.
    docs = {name: input_docs(nlp, path, sents)[0] for name, nlp in nlps.items()}
    n_words = sum(len(doc) for doc in next(iter(docs.values())))
    for name, nlp in nlps.items():
        list(nlp.pipe(copies(docs[name][: max(1, len(docs[name]) // 5)])))  # warm-up
    times: Dict[str, List[float]] = {name: [] for name in nlps}
    ents: Dict[str, int] = {}
    names = list(nlps)
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[: rep % len(names)]:
            batch = copies(docs[name])
            start = time.perf_counter()
            out = list(nlps[name].pipe(batch))
            times[name].append(time.perf_counter() - start)
            ents[name] = sum(len(doc.ents) for doc in out)
    return {name: {"times_s": t, "words_per_s": n_words / statistics.median(t),
                   "n_ents": ents[name]} for name, t in times.items()} | {
        "n_words": n_words, "n_docs": len(docs[names[0]])}


def train_speed(nlps: Dict[str, Any], train_path: Path, words: int, batch_words: int,
                rounds: int) -> Dict[str, Any]:
    from spacy.training import Example, minibatch_by_words

    out: Dict[str, Any] = {}
    batches: Dict[str, List[List[Any]]] = {}
    optimizers = {}
    for name, nlp in nlps.items():
        docs, refs = input_docs(nlp, train_path, "gold")
        examples = [Example(doc, ref) for doc, ref in zip(docs, refs)]
        chosen, seen = [], 0
        for batch in minibatch_by_words(examples, size=batch_words, tolerance=0.2):
            if seen >= words:
                break
            chosen.append(batch)
            seen += sum(len(eg.reference) for eg in batch)
        batches[name] = chosen
        optimizers[name] = nlp.resume_training()
        nlp.update(chosen[0], sgd=optimizers[name])  # warm-up
        out[name] = {"words": seen - sum(len(eg.reference) for eg in chosen[0]), "times_s": []}
    names = list(nlps)
    for rnd in range(rounds):
        for name in names[rnd % len(names):] + names[: rnd % len(names)]:
            start = time.perf_counter()
            for batch in batches[name][1:]:
                nlps[name].update(batch, sgd=optimizers[name], drop=0.1)
            out[name]["times_s"].append(time.perf_counter() - start)
    for res in out.values():
        res["words_per_s"] = res["words"] / statistics.median(res["times_s"])
    return out


LONG_DOC_SCRIPT = """
import json, sys, time, tracemalloc
import spacy
from spacy.tokens import Doc
from spacy_rnn_ner import batching

model, n_tokens, pieces = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "pieces"
if not pieces:
    batching.SPLIT_ABOVE_TOKENS = n_tokens + 1
nlp = spacy.load(model)
words = [t.text for t in nlp.make_doc(
    "Vincent Vega met Jules Winnfield in Lisbon on Monday , and Reuters reported that "
    "Acme Corp hired Grace Hopper in Paris .")]
words = (words * (n_tokens // len(words) + 1))[:n_tokens]
nlp("Warm up .")
doc = Doc(nlp.vocab, words=words)
start = time.perf_counter()
nlp(doc.copy())
seconds = time.perf_counter() - start
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
nlp(doc)
peak = tracemalloc.get_traced_memory()[1] - base
print(json.dumps({"seconds": seconds, "bytes_per_token": peak / n_tokens,
                  "ents": [[e.start, e.end, e.label_] for e in doc.ents]}))
"""


def long_doc(model: str, n_tokens: int) -> Dict[str, Any]:
    """One doc of `n_tokens` through `model`, in fresh processes, in pieces
    (as `rnn_ner` runs it) and whole: seconds, tracemalloc peak per token
    (beyond the doc itself), and whether the entities agree."""
    import json

    out: Dict[str, Any] = {"model": model, "n_tokens": n_tokens}
    for mode in ("pieces", "whole"):
        proc = subprocess.run([sys.executable, "-c", LONG_DOC_SCRIPT, model, str(n_tokens), mode],
                              check=True, capture_output=True, text=True)
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ents = [out[mode].pop("ents") for mode in ("pieces", "whole")]
    out["same_entities"] = ents[0] == ents[1]
    out["n_ents"] = len(ents[0])
    return out


def render(data: Dict[str, Any]) -> str:
    m = data["machine"]
    lines = ["# Pipeline speed: `rnn_ner` against spaCy's `ner`", "",
             f"Command: `{data['command']}`", "",
             f"Run of {m['date']} on {m['cpu']} ({m['cpu_count']} cores, load average at start "
             f"{m['loadavg']}); thread settings {data['threads']}; RNN compute path "
             f"`{data['rnn_path']}`; git {m['git']}. Models: `rnn_ner` {data['models']['rnn_ner']}"
             f" ({data['config']}), spaCy `ner` {data['models']['ner']}"
             f"{', both trained ' + str(data['train_steps']) + ' steps' if data['train_steps'] else ''}.",
             "", "## Eval words/s (`nlp.pipe`, median of "
             f"{data['repeats']} passes, side by side)", "",
             f"| docs | words | `rnn_ner` | spaCy `ner` | ratio | ensemble of {data['ensemble']} | "
             "ensemble ratio |", "|:--|--:|--:|--:|--:|--:|--:|"]
    for name, res in data["eval"].items():
        ours, theirs = res["rnn_ner"]["words_per_s"], res["ner"]["words_per_s"]
        ens = res.get("ensemble", {}).get("words_per_s")
        ens_cells = (f"{ens:,.0f} | {ens / theirs:.2f}" if ens else "| ")
        lines.append(f"| {name} | {res['n_words']:,} | {ours:,.0f} | {theirs:,.0f} | "
                     f"**{ours / theirs:.2f}** | {ens_cells} |")
    tr = data.get("train")
    if tr:
        ours, theirs = tr["rnn_ner"]["words_per_s"], tr["ner"]["words_per_s"]
        lines += ["", f"## Training words/s (`nlp.update`, batches of about {data['batch_words']} "
                  f"words, median of {data['rounds']} rounds)", "",
                  "| `rnn_ner` | spaCy `ner` | ratio |", "|--:|--:|--:|",
                  f"| {ours:,.0f} | {theirs:,.0f} | **{ours / theirs:.2f}** |"]
    ld = data.get("long_doc")
    if ld:
        lines += ["", f"## One {ld['n_tokens']:,}-token doc through `{ld['model']}`", "",
                  "Fresh process per row; memory: tracemalloc peak of `nlp(doc)` beyond the doc "
                  "itself.", "", "| mode | seconds | bytes per token |", "|:--|--:|--:|"]
        for mode, label in (("pieces", "in pieces (default)"), ("whole", "whole doc")):
            lines.append(f"| {label} | {ld[mode]['seconds']:.2f} | {ld[mode]['bytes_per_token']:,.0f} |")
        lines += ["", f"Entities the same both ways: {ld['same_entities']} ({ld['n_ents']:,})."]
    lines.append("")
    return "\n".join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rnn-model", default=None)
    p.add_argument("--ner-model", default=None)
    p.add_argument("--train-steps", type=int, default=0, help="train both systems first")
    p.add_argument("--config", default="configs/conll03.cfg")
    p.add_argument("--train", default="benchmarks/cache/conll03/train.spacy")
    p.add_argument("--dev", default="benchmarks/cache/conll03/dev.spacy")
    p.add_argument("--docs", default="benchmarks/cache/conll03/test.spacy",
                   help="test set as 10-sentence docs")
    p.add_argument("--articles", default="benchmarks/cache/conll03-articles/test.spacy",
                   help="test set as whole articles")
    p.add_argument("--ensemble", type=int, default=6,
                   help="also time an ensemble of this many copies of the rnn_ner model (0: off)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-words", type=int, default=20000)
    p.add_argument("--batch-words", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--long-doc-model", default=None,
                   help="also time one long doc through this pipeline (e.g. README command 1's)")
    p.add_argument("--long-doc-tokens", type=int, default=200000)
    p.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    import os

    import spacy

    from spacy_rnn_ner.ensemble import join_pipelines
    from spacy_rnn_ner.layers import backend_info

    args = parse_args(argv)
    if args.train_steps:
        models = train_models(args)
    elif args.rnn_model and args.ner_model:
        models = {"rnn_ner": args.rnn_model, "ner": args.ner_model}
    else:
        raise SystemExit("give --train-steps N, or --rnn-model and --ner-model")
    nlps = {name: spacy.load(_common.repo_path(path)) for name, path in models.items()}
    ensemble = None
    if args.ensemble:
        # Speed does not depend on the members' weights: copies of one model
        # have the architecture of an ensemble of trained seeds.
        copies_ = [spacy.load(_common.repo_path(models["rnn_ner"])) for _ in range(args.ensemble)]
        ensemble = join_pipelines(copies_)
    data: Dict[str, Any] = {
        "command": _common.command_line("pipeline_speed.py", sys.argv[1:] if argv is None else argv),
        "machine": _common.machine_facts(), "rnn_path": backend_info()["path"],
        "threads": {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        "models": models, "config": args.config, "train_steps": args.train_steps,
        "ensemble": args.ensemble, "repeats": args.repeats, "batch_words": args.batch_words,
        "rounds": args.rounds, "eval": {},
    }
    for name, which, sents in SETTINGS:
        path = _common.repo_path(getattr(args, which))
        if not path.exists():
            log(f"{path} not found: '{name}' skipped (see the module docstring)")
            continue
        systems = dict(nlps, **({"ensemble": ensemble} if ensemble is not None else {}))
        log(name)
        data["eval"][name] = eval_speed(systems, path, sents, args.repeats)
    if args.train_words:
        log("training throughput")
        data["train"] = train_speed(nlps, _common.repo_path(args.train), args.train_words,
                                    args.batch_words, args.rounds)
    if args.long_doc_model:
        log("one long doc")
        data["long_doc"] = long_doc(args.long_doc_model, args.long_doc_tokens)
    text = render(data)
    if args.out:
        _common.write_report(_common.repo_path(args.out), data, render)
    print(text)
    return data


if __name__ == "__main__":
    main()
