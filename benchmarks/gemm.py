"""Do the hand-written packed products of the AVX-512 backend pay?

    python benchmarks/gemm.py                  # ~10 min on a busy 2-core machine
    python benchmarks/gemm.py --quick          # smoke test (~1 min, to benchmarks/cache/)

The AVX-512 backend (`spacy_rnn_ner/layers/backends/avx512.py`) runs its
backprop with hand-written products of `_cpu_kernels_impl.c`: recurrent products
with weights packed once per pass (`pack_b`/`gemm_packed`, inside
`run_back_steps`), the weight gradients (`wgrad`) and the input gradient
(`gemm_packed`). Its forward is the whole-step kernels (`run_steps`), which
no BLAS call can replace. This script times, in one process with 1 BLAS
thread, the RNN layer and the `rnn_ner` pipeline with these variants:

- `avx512`: the default (all packed products);
- `avx512+np` / `avx512+blis`: weight and input gradients by numpy's
  matmul (OpenBLAS) / thinc's blis instead of `wgrad` and `gemm_packed`;
- `avx512-gemm`: backprop as the C backend does it (per-step gate kernels
  and numpy products): no packed product left, forward unchanged;
- `c` / `c+blis`: the C-kernels backend (no AVX-512 code), numpy's / blis's
  products.

Variants run one right after the other, in a rotating order, once per round;
each round gives each variant's words/s and its ratio to `avx512`; the report
gives medians over rounds of both (ratios > 1: faster than the packed
products). Writes `benchmarks/results/gemm.{md,json}`.
"""
import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

REPO = _common.REPO
RESULTS = REPO / "benchmarks" / "results"
CACHE = REPO / "benchmarks" / "cache"
VARIANTS = ("avx512", "avx512+np", "avx512+blis", "avx512-gemm", "c", "c+blis")
MIN_LEN, MAX_LEN, BATCH = 5, 60, 64
log = _common.logger("gemm")


def set_variant(name: str) -> None:
    """Switch the layer's products to those of variant `name`."""
    import numpy

    from spacy_rnn_ner.layers import cells
    from spacy_rnn_ner.layers.backends import avx512, base, ckernels

    cells.USE_PACKED = not name.startswith("c")
    avx512.PRODUCTS = {"avx512+np": numpy.matmul, "avx512+blis": base.blis_matmul}.get(name, "packed")
    avx512.PACKED_BACKWARD = name != "avx512-gemm"
    ckernels.MATMUL = base.blis_matmul if name == "c+blis" else numpy.matmul


def rounds_of(
    tasks: Dict[str, Callable[[], int]], rounds: int, calls: int
) -> Dict[str, Any]:
    """Run each variant's task `calls` times per round (median seconds per
    call), variants in a rotating order; words/s and ratio to avx512 per
    round, and their medians, by wall time ("wall") and by this process's
    CPU time ("cpu": 1 BLAS thread, directions in turn, so the process runs
    one thread; the time other jobs hold the core is left out). A task
    returns the words it processed."""
    names = list(tasks)
    per_round: Dict[str, List[Dict[str, float]]] = {"wall": [], "cpu": []}
    for r in range(rounds):
        rates: Dict[str, Dict[str, float]] = {"wall": {}, "cpu": {}}
        for name in names[r % len(names):] + names[: r % len(names)]:
            set_variant(name)
            gc.collect()
            wall, cpu = [], []
            for _ in range(calls):
                start, start_cpu = time.perf_counter(), time.process_time()
                words = tasks[name]()
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            rates["wall"][name] = words / statistics.median(wall)
            rates["cpu"][name] = words / max(statistics.median(cpu), 1e-9)
        for clock in per_round:
            per_round[clock].append(rates[clock])
    set_variant("avx512")
    return {
        clock: {
            name: {
                "words_per_s": statistics.median(r[name] for r in rs),
                "ratio": statistics.median(r[name] / r["avx512"] for r in rs),
                "ratio_spread": [min(r[name] / r["avx512"] for r in rs),
                                 max(r[name] / r["avx512"] for r in rs)],
                "rounds": [r[name] for r in rs],
            }
            for name in names
        }
        for clock, rs in per_round.items()
    }


def layer_cases(quick: bool) -> List[Dict[str, Any]]:
    dims = [(96, 128)] if quick else [(96, 128), (256, 256)]
    cells = ["lstm"] if quick else ["lstm", "gru"]
    return [{"cell": c, "nI": nI, "nH": nH} for nI, nH in dims for c in cells]


def measure_layer(case: Dict[str, Any], rounds: int, calls: int, seed: int) -> Dict[str, Any]:
    """fwd (inference) and fwd+bwd words/s of a BiRNN on a batch of 64
    sentences of 5-60 tokens."""
    import numpy
    from thinc.api import NumpyOps
    from thinc.types import Padded

    from spacy_rnn_ner.layers.rnn import RNN

    ops = NumpyOps()
    rng = numpy.random.RandomState(seed)
    lengths = rng.randint(MIN_LEN, MAX_LEN + 1, size=BATCH).tolist()
    Xp = ops.list2padded([rng.uniform(-1, 1, (n, case["nI"])).astype("f") for n in lengths])
    model = RNN(nO=2 * case["nH"], nI=case["nI"], cell=case["cell"], bidirectional=True)
    model.initialize(X=Xp)
    words = int(sum(lengths))
    dY = numpy.ones(Xp.data.shape[:2] + (2 * case["nH"],), dtype="f")

    def fwd() -> int:
        model.predict(Xp)
        return words

    def fwdbwd() -> int:
        Yp, backprop = model(Xp, is_train=True)
        backprop(Padded(dY, Yp.size_at_t, Yp.lengths, Yp.indices))
        return words

    for task in (fwd, fwdbwd):  # warm up every variant (workspace, caches)
        for name in VARIANTS:
            set_variant(name)
            task()
    return {
        **case, "batch_words": words,
        "fwd": rounds_of({name: fwd for name in VARIANTS}, rounds, calls),
        "fwdbwd": rounds_of({name: fwdbwd for name in VARIANTS}, rounds, calls),
    }


def measure_pipeline(rounds: int, n_predict: int, n_update: int, width: Optional[int]) -> Dict[str, Any]:
    """`ner.predict` and `nlp.update` words/s of configs/lstm.cfg (fresh
    weights: speed does not depend on them; `width` overrides its embedding
    and encoder width) on the bundled corpus."""
    import subprocess

    from spacy.tokens import DocBin
    from spacy.training import Example
    from spacy.training.initialize import init_nlp
    from spacy.util import load_config, minibatch

    corpus = CACHE / "corpus"
    if not (corpus / "train.spacy").exists():
        subprocess.run([sys.executable, str(REPO / "corpus" / "build.py"), "--out-dir", str(corpus)],
                       check=True, cwd=REPO)
    overrides = {"paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy")}
    if width:
        overrides["components.rnn_ner.model.tok2vec.embed.width"] = width
    config = load_config(REPO / "configs" / "lstm.cfg", overrides=overrides)
    nlp = init_nlp(config, use_gpu=-1)
    ner = nlp.get_pipe("rnn_ner")
    dev = list(DocBin().from_disk(corpus / "dev.spacy").get_docs(nlp.vocab))[:n_predict]
    docs = [nlp.make_doc(doc.text) for doc in dev]
    train = list(DocBin().from_disk(corpus / "train.spacy").get_docs(nlp.vocab))[:n_update]
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in train]
    batches = list(minibatch(examples, size=32))
    optimizer = nlp.create_optimizer()

    def predict() -> int:
        for batch in minibatch(docs, size=nlp.batch_size):
            ner.predict(batch)
        return sum(len(doc) for doc in docs)

    def update() -> int:
        for batch in batches:
            nlp.update(batch, sgd=optimizer)
        return sum(len(eg.reference) for eg in examples)

    names = ("avx512", "avx512-gemm", "c")
    for name in names:
        set_variant(name)
        predict()
        update()
    return {
        "config": "configs/lstm.cfg", "width": width or config["components"]["rnn_ner"]["model"]["tok2vec"]["embed"]["width"],
        "predict_docs": len(docs), "update_docs": len(examples),
        "update_batch_docs": 32,
        "predict": rounds_of({name: predict for name in names}, rounds, 1),
        "update": rounds_of({name: update for name in names}, rounds, 1),
    }


def _ratio(res: Dict[str, Any]) -> str:
    low, high = res["ratio_spread"]
    return f"{res['ratio']:.2f}x ({low:.2f}-{high:.2f})"


def render(results: Dict[str, Any]) -> str:
    lines = [
        "# Packed products vs blis and numpy (`benchmarks/gemm.py`)",
        "",
        f"Command: `{results['command']}`  ",
        f"Date: {results['machine']['date']}; CPU: {results['machine']['cpu']} "
        f"({results['machine']['cpu_count']} cores, shared); git {results['machine']['git']}; "
        f"load average at start {results['machine']['loadavg']}.",
        "",
        "1 BLAS thread, so the process runs one thread. Each cell: the variant's ratio to "
        "`avx512` in the same round, median over rounds (lowest-highest); > 1: faster than "
        "the packed products. `cpu`: by this process's CPU time (leaves out the time other "
        "jobs held the core; the steadier figure on a shared machine), `wall`: by wall time. "
        "The `avx512` column gives its words/s (median over rounds).",
        "",
        "## RNN layer (BiRNN, batch of 64 sentences of 5-60 tokens)",
        "",
    ]
    names = list(VARIANTS)
    if not results["layer"]:
        lines.append("Skipped (`--skip-layer`).")
    else:
        lines.append("| cell | nI/nH | mode | clock | " + " | ".join(names) + " |")
        lines.append("|---|---|---|---|" + "---:|" * len(names))
    for case in results["layer"]:
        for mode, label in (("fwd", "fwd"), ("fwdbwd", "fwd+bwd")):
            for clock in ("cpu", "wall"):
                res = case[mode][clock]
                cells = [f"{res['avx512']['words_per_s']:,.0f} w/s"] + [_ratio(res[n]) for n in names[1:]]
                lines.append(f"| {case['cell']} | {case['nI']}/{case['nH']} | {label} | {clock} | "
                             + " | ".join(cells) + " |")
    pipe = results.get("pipeline")
    if pipe:
        pnames = list(pipe["predict"]["cpu"])
        lines += [
            "",
            f"## Pipeline (`{pipe['config']}`, width {pipe['width']}, bundled corpus; `ner.predict` on "
            f"{pipe['predict_docs']} dev docs, `nlp.update` on {pipe['update_docs']} train docs "
            f"in batches of {pipe['update_batch_docs']})",
            "",
            "| | clock | " + " | ".join(pnames) + " |",
            "|---|---|" + "---:|" * len(pnames),
        ]
        for task in ("predict", "update"):
            for clock in ("cpu", "wall"):
                res = pipe[task][clock]
                cells = [f"{res['avx512']['words_per_s']:,.0f} w/s"] + [
                    f"{res[n]['words_per_s']:,.0f} w/s, {_ratio(res[n])}" for n in pnames[1:]]
                task_name = "ner.predict" if task == "predict" else "nlp.update"
                lines.append(f"| `{task_name}` | {clock} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test, results to benchmarks/cache/")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 9, quick 3)")
    parser.add_argument("--skip-layer", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--width", type=int, default=None,
                        help="pipeline: embedding/encoder width instead of configs/lstm.cfg's (96)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output prefix (default benchmarks/results/gemm; --quick: benchmarks/cache/gemm)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 9)
    # 1 BLAS thread: set before numpy loads its BLAS (the measurements import it).
    os.environ.update(_common.thread_vars(1))
    sys.path.insert(0, str(REPO))
    from spacy_rnn_ner.layers import backend_info

    if backend_info()["path"] != "avx512":
        sys.exit(f"needs the avx512 path, this machine has: {backend_info()}")
    results: Dict[str, Any] = {
        "command": _common.command_line("gemm.py", sys.argv[1:] if argv is None else argv),
        "machine": _common.machine_facts(("numpy", "thinc", "blis", "spacy", "spacy-rnn-ner")),
        "rounds": rounds,
        "layer": [],
    }
    for case in [] if args.skip_layer else layer_cases(args.quick):
        log(f"layer {case}")
        results["layer"].append(measure_layer(case, rounds, 3 if args.quick else 5, args.seed))
    if not args.skip_pipeline:
        log("pipeline")
        results["pipeline"] = measure_pipeline(
            rounds, 100 if args.quick else 400, 64 if args.quick else 256, args.width)
    out = args.out or (CACHE if args.quick else RESULTS) / "gemm"
    print(_common.write_report(out, results, render))


if __name__ == "__main__":
    main()
