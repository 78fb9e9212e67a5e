"""What self-attention costs on top of the BiLSTM encoder: words/s of the
encoder's forward (inference) and forward + backward (training), and peak
memory, for `spacy-rnn-ner.RNNEncoder.v1` alone and followed by
`spacy-rnn-ner.SelfAttention.v1` (`RNNAttentionEncoder.v1`) with the whole
doc (window 0) and with a window of 64 tokens, on synthetic input.

    python benchmarks/attention_cost.py                 # full run
    python benchmarks/attention_cost.py --quick         # smoke test (~1 min)

Every measurement feeds the encoder `--tokens` tokens (random float32
vectors) cut into docs of one length (50, 500, 5,000, 20,000), so words/s are
comparable across lengths; the systems are timed one after the other in one
process, in rotating order, round after round: compare the ratios, which come
from one run. Peak memory is tracemalloc's peak over one forward + backward
call (numpy allocations, which hold all the arrays of both layers) above what
was allocated before it, with the RNN's buffer pool emptied first. Writes `benchmarks/results/attention-cost.{md,json}`
(`--quick`: `benchmarks/cache/`), with the command and the date.
"""
import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

RESULTS = _common.REPO / "benchmarks" / "results"
CACHE = _common.REPO / "benchmarks" / "cache"
SYSTEMS = ("rnn", "attn-w0", "attn-w64")
MODES = ("fwd", "fwdbwd")


def build_encoder(system: str, width: int, heads: int):
    from spacy.util import registry

    common = {"width": width, "depth": 1, "cell": "lstm", "bidirectional": True, "dropout": 0.0}
    if system == "rnn":
        return registry.architectures.get("spacy-rnn-ner.RNNEncoder.v1")(**common)
    window = int(system.rsplit("-w", 1)[1])
    build = registry.architectures.get("spacy-rnn-ner.RNNAttentionEncoder.v1")
    return build(**common, attention_heads=heads, attention_window=window,
                 attention_dropout=0.0, distance_bias=True)


def make_docs(numpy, length: int, tokens: int, width: int) -> List[Any]:
    rng = numpy.random.RandomState(0)
    return [rng.uniform(-1, 1, (length, width)).astype("f") for _ in range(max(1, tokens // length))]


def runners(model, Xs) -> Dict[str, Callable[[], None]]:
    dYs = [X[:, :1].repeat(model.get_dim("nO"), axis=1) * 0.01 for X in Xs]

    def fwd() -> None:
        model.predict(Xs)

    def fwdbwd() -> None:
        _, backprop = model.begin_update(Xs)
        backprop(dYs)

    return {"fwd": fwd, "fwdbwd": fwdbwd}


def peak_memory(run: Callable[[], None]) -> int:
    from spacy_rnn_ner.layers.workspace import WORKSPACE

    # The RNN reuses pooled buffers from earlier calls: free them, so that its
    # peak counts them as the attention's counts its fresh arrays.
    WORKSPACE.clear()
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(args) -> List[Dict[str, Any]]:
    import numpy
    from thinc.api import fix_random_seed

    log = _common.logger("attention_cost")
    rows = []
    for length in args.lengths:
        fix_random_seed(0)
        Xs = make_docs(numpy, length, args.tokens, args.input_width)
        n_tokens = sum(len(X) for X in Xs)
        systems = {}
        for name in SYSTEMS:
            model = build_encoder(name, args.width, args.heads)
            model.initialize(X=Xs[:2])
            systems[name] = runners(model, Xs)
            runners(model, [Xs[0][:50]])["fwdbwd"]()  # warm-up on a short doc
        samples: Dict[str, Dict[str, List[float]]] = {m: {s: [] for s in SYSTEMS} for m in MODES}
        # Peak memory first: one forward + backward under tracemalloc, also
        # timed. A call slower than --slow-seconds is not repeated: that
        # timing is its fwdbwd sample (tracemalloc costs little on the few
        # large arrays of such calls).
        for name in SYSTEMS:
            start = time.perf_counter()
            peak = peak_memory(systems[name]["fwdbwd"])
            seconds = time.perf_counter() - start
            if seconds > args.slow_seconds:
                samples["fwdbwd"][name].append(seconds)
            rows.append({"length": length, "docs": len(Xs), "tokens": n_tokens, "mode": "peak",
                         "system": name, "peak_bytes": peak})
            log(f"len {length:>6} peak   {name:9s} {peak / 2**20:>10.1f} MiB ({seconds:.1f} s)")
        for mode in MODES:
            for r in range(args.repeats):
                order = SYSTEMS[r % len(SYSTEMS):] + SYSTEMS[: r % len(SYSTEMS)]
                for name in order:
                    done = samples[mode][name]
                    if done and (done[0] > args.slow_seconds or len(done) >= args.repeats):
                        continue
                    gc.collect()
                    start = time.perf_counter()
                    systems[name][mode]()
                    done.append(time.perf_counter() - start)
            for name in SYSTEMS:
                seconds = statistics.median(samples[mode][name])
                rows.append({"length": length, "docs": len(Xs), "tokens": n_tokens, "mode": mode,
                             "system": name, "seconds": seconds, "words_per_s": n_tokens / seconds,
                             "samples": len(samples[mode][name]),
                             "timed_once": samples[mode][name][0] > args.slow_seconds})
                log(f"len {length:>6} {mode:6s} {name:9s} {n_tokens / seconds:>10.0f} words/s "
                    f"({len(samples[mode][name])} call(s))")
    return rows


def render(report: Dict[str, Any]) -> str:
    rows = report["results"]
    get = {(r["length"], r["mode"], r["system"]): r for r in rows}
    la, lb = report["load_average"]["start"], report["load_average"]["end"]
    a = report["args"]
    lines = [
        "# Cost of self-attention on the BiLSTM encoder", "",
        f"Generated {report['date']} by `{report['command']}` ({a['threads']} BLAS thread(s); "
        f"{report['machine']['cpu']}; numpy {report['machine']['versions']['numpy']}; "
        f"load average {la[0]:.2f} at start, {lb[0]:.2f} at end; git {report['machine']['git']}).", "",
        f"Synthetic float32 input of width {a['input_width']}, {a['tokens']} tokens per "
        f"measurement cut into docs of the given length; encoder width {a['width']}, one "
        f"bidirectional LSTM layer (`RNNEncoder.v1`), attention (`RNNAttentionEncoder.v1`) "
        f"with {a['heads']} heads and the distance bias, over the whole doc (`w0`) or "
        f"+/- 64 tokens (`w64`). Words/s: median of {a['repeats']} calls, or of one call "
        f"when it took over {a['slow_seconds']:g} s (marked *; for fwdbwd, the call "
        "under tracemalloc that measured the peak); "
        "ratios are attention / RNN alone (below 1 = slower). Peak: tracemalloc's peak "
        "over one forward + backward call; ratio = attention / RNN alone.", "",
        "| doc length | docs | mode | rnn words/s | w0 words/s | w64 words/s | w0/rnn | w64/rnn |",
        "|--:|--:|:--|--:|--:|--:|--:|--:|",
    ]
    lengths = sorted({r["length"] for r in rows})
    for length in lengths:
        for mode in ("fwd", "fwdbwd"):
            w = {s: get[(length, mode, s)]["words_per_s"] for s in SYSTEMS}
            star = {s: "*" if get[(length, mode, s)].get("timed_once") else "" for s in SYSTEMS}
            lines.append(
                f"| {length} | {get[(length, mode, 'rnn')]['docs']} | {mode} | {w['rnn']:,.0f}{star['rnn']} | "
                f"{w['attn-w0']:,.0f}{star['attn-w0']} | {w['attn-w64']:,.0f}{star['attn-w64']} | "
                f"{w['attn-w0'] / w['rnn']:.2f} | {w['attn-w64'] / w['rnn']:.2f} |"
            )
    lines += ["", "| doc length | rnn peak MiB | w0 peak MiB | w64 peak MiB | w0/rnn | w64/rnn |",
              "|--:|--:|--:|--:|--:|--:|"]
    for length in lengths:
        p = {s: get[(length, "peak", s)]["peak_bytes"] for s in SYSTEMS}
        lines.append(
            f"| {length} | {p['rnn'] / 2**20:.1f} | {p['attn-w0'] / 2**20:.1f} | "
            f"{p['attn-w64'] / 2**20:.1f} | {p['attn-w0'] / p['rnn']:.2f} | {p['attn-w64'] / p['rnn']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 500, 5000, 20000])
    p.add_argument("--tokens", type=int, default=20000, help="tokens per measurement")
    p.add_argument("--input-width", type=int, default=128, help="as conll03.cfg's embeddings")
    p.add_argument("--width", type=int, default=256, help="as conll03.cfg's encoder")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="timed calls per system and mode")
    p.add_argument("--slow-seconds", type=float, default=30.0,
                   help="a call slower than this is timed once (see measure)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="lengths 50 500, 2,000 tokens, 1 repeat")
    p.add_argument("--out", default=None, help="path without suffix")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.tokens, args.repeats = [50, 500], 2000, 1
    out = Path(args.out) if args.out else (CACHE / "attention-cost-quick" if args.quick
                                          else RESULTS / "attention-cost")
    os.environ.update(_common.thread_vars(args.threads))  # before numpy loads BLAS
    load_start = _common.loadavg()
    facts = _common.machine_facts()
    rows = measure(args)
    report = {
        "command": _common.command_line("attention_cost.py", argv),
        "date": facts["date"],
        "args": vars(args),
        "load_average": {"start": load_start, "end": _common.loadavg()},
        "machine": facts,
        "results": rows,
    }
    _common.write_json(out.with_suffix(".json"), report)
    out.with_suffix(".md").write_text(render(report), encoding="utf8")
    print(render(report))


if __name__ == "__main__":
    main()
