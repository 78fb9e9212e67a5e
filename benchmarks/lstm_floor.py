"""How fast could a numpy LSTM be? The time of the work our BiLSTM cannot
skip, next to our layer and `torch.nn.LSTM`, on equal-length batches.

    python benchmarks/lstm_floor.py            # ~2 min; writes benchmarks/results/lstm-floor.{md,json}
    python benchmarks/lstm_floor.py --threads 2

The *floor* of one bidirectional LSTM layer on numpy is the sum, over both
directions, of the matrix products it must make with numpy's BLAS and the
fused C gate kernels it must run, with nothing else: no bias add, no
concatenation, no buffer allocation, no per-step bookkeeping beyond a Python
loop that calls them.

- forward: the input projection `X @ Wx.T` (one product), then for each of
  the T steps `h_prev @ Wh.T` and the LSTM gate kernel;
- backward: for each step the gate-gradient kernel and `dg @ Wh`, then the
  three weight/input products `dG.T @ H_prev`, `dG.T @ X`, `dG @ Wx`.

If torch's layer takes less time than this floor, no rearrangement of our
Python code can make the layer as fast as torch's with numpy's BLAS; only a
faster matrix product (or gate kernel) could. That is what the layer's
AVX-512 kernels are (2026-11-27): where the CPU has AVX-512F, our layer no
longer makes any of these products with numpy's BLAS (whole steps forward
and backward, the weight gradients in their own kernel), and `ours/floor`
above 1 shows what that gained over the floor.
Every figure is measured in one process, the three systems alternating block
by block on identical inputs; compare the ratios.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

REPO = _common.REPO
RESULTS = REPO / "benchmarks" / "results"
BATCH, LENGTH = 64, 32
SHAPES = ((96, 128), (256, 256))


def time_ms(runner: Tuple[Callable[[Any], Any], Callable[[], Any]], warmup: int,
            repeats: int) -> List[float]:
    """Milliseconds of `fn(prepare())` per call; `prepare` runs untimed."""
    fn, prepare = runner
    for _ in range(warmup):
        fn(prepare())
    times = []
    for _ in range(repeats):
        arg = prepare()
        start = time.perf_counter()
        fn(arg)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def untimed() -> None:
    return None


def floor_runners(numpy, kernels, nI: int, nH: int, X) -> Tuple[Dict[str, Tuple], List[Dict]]:
    """The unavoidable products and gate kernels of a numpy BiLSTM layer, and
    the buffers of each direction (weights Wx, Wh; outputs H of the last call)."""
    rng = numpy.random.RandomState(1)
    T, B, N = LENGTH, BATCH, LENGTH * BATCH
    dirs = []
    for _ in range(2):
        dirs.append({
            "Wx": rng.uniform(-0.1, 0.1, (4 * nH, nI)).astype("f"),
            "Wh": rng.uniform(-0.1, 0.1, (4 * nH, nH)).astype("f"),
            "G": numpy.empty((N, 4 * nH), "f"), "H": numpy.empty((N, nH), "f"),
            "C": numpy.empty((N, nH), "f"), "TC": numpy.empty((N, nH), "f"),
            "dG": numpy.empty((N, 4 * nH), "f"), "dC": numpy.zeros((N, nH), "f"),
            "dH": rng.uniform(-1, 1, (N, nH)).astype("f"),
            "rec": numpy.empty((B, 4 * nH), "f"), "drec": numpy.empty((B, nH), "f"),
        })

    def forward() -> None:
        for d in dirs:
            numpy.matmul(X, d["Wx"].T, out=d["G"])
            Wh_T = d["Wh"].T
            for t in range(T):
                rows = slice(t * B, (t + 1) * B)
                prev = slice((t - 1) * B, t * B) if t else slice(0, 0)
                if t:
                    numpy.matmul(d["H"][prev], Wh_T, out=d["rec"])
                kernels.lstm_fwd(d["G"][rows], d["rec"], d["C"][prev], d["C"][rows],
                                 d["TC"][rows], d["H"][rows], B, B if t else 0, nH)

    def backward() -> None:
        # Reads the activations the forward pass left in G (a real backward
        # would too); only products and kernels, no additions between them.
        for d in dirs:
            for t in reversed(range(T)):
                rows = slice(t * B, (t + 1) * B)
                prev = slice((t - 1) * B, t * B) if t else slice(0, 0)
                kernels.lstm_bwd(d["dH"][rows], d["dC"][rows], d["G"][rows], d["C"][prev],
                                 d["TC"][rows], d["dG"][rows], d["dC"][prev], B,
                                 B if t else 0, nH)
                if t:
                    numpy.matmul(d["dG"][rows], d["Wh"], out=d["drec"])
            numpy.matmul(d["dG"].T, d["H"])
            numpy.matmul(d["dG"].T, X)
            numpy.matmul(d["dG"], d["Wx"])

    def fwdbwd(_: Any = None) -> None:
        forward()
        backward()

    return {"fwd": (lambda _: forward(), untimed), "fwdbwd": (fwdbwd, untimed)}, dirs


def ours_runners(numpy, nI: int, nH: int, Xp) -> Dict[str, Tuple]:
    from spacy_rnn_ner.layers.rnn import RNN
    from thinc.api import Padded

    model = RNN(nO=2 * nH, nI=nI, cell="lstm", bidirectional=True)
    model.initialize(X=Xp)
    dY = numpy.ones((LENGTH, BATCH, 2 * nH), "f")

    def fwdbwd(dY) -> None:
        Yp, backprop = model(Xp, is_train=True)
        backprop(Padded(dY, Yp.size_at_t, Yp.lengths, Yp.indices))

    # The backward pass may consume its gradient in place: a fresh one per call.
    return {"fwd": (lambda _: model(Xp, is_train=False), untimed),
            "fwdbwd": (fwdbwd, dY.copy)}


def torch_runners(torch, nI: int, nH: int, X) -> Dict[str, Tuple]:
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(nI, nH, bidirectional=True).float()
    x = torch.from_numpy(X.copy())

    def fwd(_: Any) -> None:
        with torch.inference_mode():
            rnn(x)

    def prepare():
        rnn.zero_grad(set_to_none=True)
        return x.detach().clone().requires_grad_(True)

    def fwdbwd(inputs) -> None:
        out, _ = rnn(inputs)
        out.sum().backward()

    # As in benchmarks/speed.py: gradients reset and input copied untimed.
    return {"fwd": (fwd, untimed), "fwdbwd": (fwdbwd, prepare)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5, help="rounds over all systems")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per block")
    p.add_argument("--out", default=str(RESULTS / "lstm-floor"), help="path without suffix")
    args = p.parse_args()
    os.environ.update(_common.thread_vars(args.threads))
    import numpy  # after the thread variables: BLAS reads them when loaded

    from spacy_rnn_ner.layers import _cpu_kernels, cells
    from thinc.api import Padded

    try:
        import torch
    except ImportError:
        raise SystemExit("torch is needed: pip install -e '.[bench]' (torch==2.13.0)")
    torch.set_num_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    results = []
    for nI, nH in SHAPES:
        X = numpy.random.RandomState(0).uniform(-1, 1, (LENGTH, BATCH, nI)).astype("f")
        Xp = Padded(X, numpy.full(LENGTH, BATCH, "i"), numpy.full(BATCH, LENGTH, "i"),
                    numpy.arange(BATCH, dtype="i"))
        systems = {
            "torch": torch_runners(torch, nI, nH, X),
            "ours": ours_runners(numpy, nI, nH, Xp),
            "floor": floor_runners(numpy, _cpu_kernels, nI, nH, X.reshape(-1, nI))[0],
        }
        for mode in ("fwd", "fwdbwd"):
            samples: Dict[str, List[float]] = {name: [] for name in systems}
            for _ in range(args.rounds):
                for name, runners in systems.items():
                    samples[name] += time_ms(runners[mode], 2, args.repeats)
            ms = {name: statistics.median(s) for name, s in samples.items()}
            row = {"nI": nI, "nH": nH, "mode": mode, "ms": ms,
                   "tokens_per_s": {k: LENGTH * BATCH / v * 1e3 for k, v in ms.items()},
                   "ours_over_torch": ms["torch"] / ms["ours"],
                   "floor_over_torch": ms["torch"] / ms["floor"],
                   "ours_over_floor": ms["floor"] / ms["ours"]}
            results.append(row)
            print(f"{nI}/{nH} {mode:6s} torch {ms['torch']:.2f} ms, ours {ms['ours']:.2f} ms, "
                  f"floor {ms['floor']:.2f} ms", flush=True)
    load_end = os.getloadavg()
    report = {
        "command": "python benchmarks/lstm_floor.py" + (f" --threads {args.threads}" if args.threads != 1 else ""),
        "date": started.isoformat(timespec="seconds"),
        "threads": args.threads, "batch": BATCH, "length": LENGTH,
        "load_average": {"start": load_start, "end": load_end},
        "versions": _common.versions(("numpy", "torch", "thinc", "spacy-rnn-ner")),
        "python": platform.python_version(), "results": results,
        "ours_whole_steps": cells.packed_available(numpy, numpy.float32),
    }
    Path(args.out + ".json").write_text(json.dumps(report, indent=2) + "\n")
    Path(args.out + ".md").write_text(render(report))
    print(render(report))


def render(r: Dict[str, Any]) -> str:
    la, lb = r["load_average"]["start"], r["load_average"]["end"]
    lines = [
        "# BiLSTM on equal lengths: ours, torch and the numpy floor", "",
        f"Generated {r['date']} by `{r['command']}` ({r['threads']} thread(s); batch "
        f"{r['batch']} x {r['length']} tokens, float32, one bidirectional layer; numpy "
        f"{r['versions']['numpy']}, torch {r['versions']['torch']}; load average "
        f"{la[0]:.2f} at start, {lb[0]:.2f} at end).", "",
        "*floor*: only the numpy matrix products and C gate kernels a numpy BiLSTM "
        "must run (see the script's docstring). Ratios are speed ratios: above 1 = "
        "the first is faster. `floor/torch` below 1 means that torch's layer is faster "
        "than the products and kernels alone, so no numpy layer built on them can match it. "
        + ("Ours ran with its AVX-512 kernels (whole steps forward and backward, packed "
           "products, weight-gradient kernel), so `ours/floor` above 1 is what they "
           "gained over numpy's BLAS."
           if r.get("ours_whole_steps") else
           "Ours ran on numpy's matmul (no AVX-512 kernels on this CPU)."),
        "",
        "Read `fwdbwd` with care: torch's forward + backward time depends on the state "
        "of the process's heap. In a fresh process (this script) it took 54-57 ms for "
        "96/128 on 2026-11-27, inside `benchmarks/speed.py`'s long-running worker 37 ms "
        "(speed.md), likely because its autograd buffers there reuse memory instead of "
        "faulting in fresh pages. `speed.md` is the reference for fwd+bwd ratios; the "
        "forward figures of the two scripts agree within the noise.",
        "",
        "| nI/H | mode | torch ms | ours ms | floor ms | ours/torch | floor/torch | ours/floor |",
        "|:--|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for row in r["results"]:
        ms = row["ms"]
        lines.append(
            f"| {row['nI']}/{row['nH']} | {row['mode']} | {ms['torch']:.2f} | {ms['ours']:.2f} | "
            f"{ms['floor']:.2f} | {row['ours_over_torch']:.2f} | {row['floor_over_torch']:.2f} | "
            f"{row['ours_over_floor']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
