"""Do the kernels' bindings cost time? This build's `_cpu_kernels` against
another build of it (e.g. the hand-written C bindings it replaced), side by
side in one process, 1 BLAS thread:

    python benchmarks/bindings.py --other OLD.so [--label-other hand-written-C]

- `call`: one `lstm_fwd` call on a small step (16 rows, 64 units), where
  the bindings' checks weigh most;
- `layer c` / `layer avx512`: forward + backward of `RNN.v1` (bi-LSTM, 128
  units, 32 sequences of 30 words) on the C-kernels path (one binding call
  per step and direction) and on the AVX-512 path (one per direction);
- `layer c, 1 sequence`: inference on one sequence of 30 words, C-kernels
  path (the smallest steps: the bindings' share is largest).

Rounds alternate the two builds; the report gives the median time of each
and the ratios other / this of the medians and of the fastest rounds (> 1:
this build is faster). On a busy machine, compare with a run against a
copy of this build itself (`--other` a copy of its .so): its ratios are
the noise. Writes
`benchmarks/results/bindings.{md,json}` (`--out`).
"""
import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy  # noqa: E402
from thinc.api import NumpyOps  # noqa: E402
from thinc.types import Padded  # noqa: E402

from spacy_rnn_ner.layers import cells  # noqa: E402
from spacy_rnn_ner.layers.rnn import RNN  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def load(path: str):
    spec = importlib.util.spec_from_file_location("_cpu_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call_case(k) -> Callable[[], None]:
    rng = numpy.random.RandomState(0)
    n, H = 16, 64

    def f(*shape):
        return rng.uniform(-1, 1, size=shape).astype("f")

    args = (f(n, 4 * H), f(n, 4 * H), f(n, H), f(n, H), f(n, H), f(n, H), n, n, H)

    def run():
        for _ in range(1000):
            k.lstm_fwd(*args)

    return run


def layer_case(k, packed: bool, B: int = 32, train: bool = True) -> Callable[[], None]:
    ops = NumpyOps()
    rng = numpy.random.RandomState(0)
    T, nI, nO = 30, 128, 256
    model = RNN(nO=nO, nI=nI, cell="lstm")
    model.initialize()
    X = rng.uniform(-1, 1, size=(T, B, nI)).astype("f")
    Xp = Padded(X, ops.asarray1i([B] * T), ops.asarray1i([T] * B), ops.asarray1i(list(range(B))))
    dY = rng.uniform(-1, 1, size=(T, B, nO)).astype("f")

    def run():
        cells._cpu_kernels, cells.USE_PACKED = k, packed
        for _ in range(5 if train else 50):
            Yp, backprop = model(Xp, is_train=train)
            if train:
                backprop(Padded(dY, Xp.size_at_t, Xp.lengths, Xp.indices))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", required=True, help="another build of _cpu_kernels (.so)")
    parser.add_argument("--label-other", default="other")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--out", default="bindings", help="name of the results files")
    args = parser.parse_args()
    this, other = cells._cpu_kernels, load(args.other)
    builds = {"this": this, args.label_other: other}
    cases: Dict[str, Dict[str, Callable[[], None]]] = {
        "call (1000 lstm_fwd, 16 x 64)": {b: call_case(k) for b, k in builds.items()},
        "layer c (5 fwd+bwd)": {b: layer_case(k, False) for b, k in builds.items()},
        "layer c, 1 sequence (50 predict)": {b: layer_case(k, False, 1, False) for b, k in builds.items()},
    }
    if this.HAS_PACKED and getattr(other, "HAS_PACKED", 0):
        cases["layer avx512 (5 fwd+bwd)"] = {b: layer_case(k, True) for b, k in builds.items()}
    times: Dict[str, Dict[str, List[float]]] = {c: {b: [] for b in builds} for c in cases}
    for r in range(args.rounds):
        for case, runs in cases.items():
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]
            for build in order:
                start = time.perf_counter()
                runs[build]()
                times[case][build].append(time.perf_counter() - start)
    cells._cpu_kernels, cells.USE_PACKED = this, True
    rows = []
    for case, by_build in times.items():
        med = {b: statistics.median(v) for b, v in by_build.items()}
        low = {b: min(v) for b, v in by_build.items()}
        rows.append({"case": case, **{f"{b}_s": round(m, 5) for b, m in med.items()},
                     "ratio_other_over_this": round(med[args.label_other] / med["this"], 3),
                     "ratio_fastest": round(low[args.label_other] / low["this"], 3)})
    command = "python benchmarks/bindings.py " + " ".join(sys.argv[1:])
    head = (f"# Bindings: this build vs {args.label_other}\n\n`{command}`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
            f"1 BLAS thread, median of {args.rounds} alternating rounds\n\n")
    table = (f"| case | this (s) | {args.label_other} (s) | {args.label_other} / this, medians "
             f"| fastest rounds |\n|---|---|---|---|---|\n")
    for row in rows:
        table += (f"| {row['case']} | {row['this_s']} | {row[args.label_other + '_s']} | "
                  f"{row['ratio_other_over_this']} | {row['ratio_fastest']} |\n")
    print(head + table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(head + table)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
