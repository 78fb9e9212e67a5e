"""Does the RNN layer need BLAS thread settings? Wall time of the layer with
the default BLAS threads (no thread variables set: OpenBLAS takes one per
core) over its time with `OPENBLAS_NUM_THREADS=1`, on each compute path.

    python benchmarks/blas_threads.py            # ~3 min on 2 cores

Each setting runs in fresh processes (BLAS reads its thread count when it
loads), alternating, `--repeats` processes per setting; a figure is the
median over those processes of each one's median call. Writes
`benchmarks/results/blas-threads.{md,json}`. Run it as is on a machine
with >= 2 cores: setting the thread variables yourself defeats its purpose.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

RESULTS = _common.REPO / "benchmarks" / "results"
SETTINGS = ("default", "one")
log = _common.logger()


def setting_env(setting: str) -> Dict[str, str]:
    """This process's environment without any BLAS/OpenMP thread variable
    ("default") or with all of them set to 1 ("one")."""
    base = {k: v for k, v in os.environ.items() if k not in _common.THREAD_VARS}
    return base if setting == "default" else {**base, **_common.thread_vars(1)}


def worker(calls: int) -> Dict[str, float]:
    """Median seconds per call of an LSTM (96 in, 128 hidden per direction,
    batch of 64, lengths 5-60), uni- and bidirectional, forward and forward
    + backward, on each compute path that runs here."""
    import numpy
    from thinc.api import NumpyOps, set_current_ops

    sys.path.insert(0, str(_common.REPO))
    from spacy_rnn_ner.layers import backends
    from spacy_rnn_ner.layers.rnn import RNN

    ops = NumpyOps()
    set_current_ops(ops)
    rng = numpy.random.RandomState(0)
    lengths = rng.randint(5, 61, size=64).tolist()
    Xp = ops.list2padded([rng.uniform(-1, 1, (n, 96)).astype("f") for n in lengths])
    out = {}
    for bi in (False, True):
        numpy.random.seed(0)
        model = RNN(256 if bi else 128, 96, cell="lstm", bidirectional=bi)
        model.initialize()
        for path in backends.available():
            with _common.rnn_path(path):
                for mode in ("fwd", "fwdbwd"):
                    def run() -> None:
                        if mode == "fwd":
                            model.predict(Xp)
                        else:
                            Yp, backprop = model(Xp, is_train=True)
                            backprop(Yp)

                    run()
                    times = []
                    for _ in range(calls):
                        start = time.perf_counter()
                        run()
                        times.append(time.perf_counter() - start)
                    out[f"{path} {'bi' if bi else 'uni'} {mode}"] = statistics.median(times)
    return out


def measure(repeats: int, calls: int) -> Dict[str, List[Dict[str, float]]]:
    runs: Dict[str, List[Dict[str, float]]] = {s: [] for s in SETTINGS}
    for rep in range(repeats):
        for setting in SETTINGS if rep % 2 == 0 else SETTINGS[::-1]:
            log(f"repeat {rep + 1}/{repeats}: {setting} BLAS threads")
            proc = subprocess.run([sys.executable, __file__, "--worker", "--calls", str(calls)],
                                  env=setting_env(setting), capture_output=True, text=True,
                                  cwd=_common.REPO)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-4000:])
                raise RuntimeError(f"worker ({setting}) failed: rc={proc.returncode}")
            runs[setting].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return runs


def summarise(runs: Dict[str, List[Dict[str, float]]]) -> List[Dict[str, Any]]:
    rows = []
    for key in runs["one"][0]:
        path, dirs, mode = key.split()
        default = statistics.median(r[key] for r in runs["default"])
        one = statistics.median(r[key] for r in runs["one"])
        rows.append({"path": path, "dirs": dirs, "mode": mode, "default_ms": 1e3 * default,
                     "one_ms": 1e3 * one, "default_over_one": default / one})
    return rows


def render(report: Dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# BLAS threads: the RNN layer with default threads vs one",
        "",
        f"Generated {m['date']} by `{report['command']}` (git {m['git']}; {m['cpu']}, "
        f"{m['cpu_count']} cores; load average {_loads(report['loadavg_start'])} at start, "
        f"{_loads(report['loadavg_end'])} at end; default BLAS threads here: "
        f"{report['default_blas_threads']}).",
        "",
        "LSTM, 96 inputs, 128 hidden per direction, batch of 64, lengths 5-60, float32. "
        "`default` = no BLAS/OpenMP thread variable set; `one` = all set to 1. Median ms per "
        f"call over {report['repeats']} processes per setting (alternating), each the median "
        f"of {report['calls']} calls. `default/one` above 1 = default threads are slower. "
        "Bidirectional layers run their two directions on two threads when BLAS may use "
        "two or more, so `default` uses two cores there: on a loaded machine that costs "
        "rather than gains.",
        "",
        "| path | dirs | mode | default ms | one ms | default/one |",
        "|:--|:--|:--|--:|--:|--:|",
    ]
    for r in report["rows"]:
        lines.append(f"| `{r['path']}` | {r['dirs']} | {r['mode']} | {r['default_ms']:.1f} | "
                     f"{r['one_ms']:.1f} | {r['default_over_one']:.2f} |")
    return "\n".join(lines) + "\n"


def _loads(loads: Optional[List[float]]) -> str:
    return " / ".join(f"{x:.2f}" for x in loads) if loads else "?"


def default_blas_threads() -> Optional[int]:
    code = ("import numpy, threadpoolctl; print(max(i['num_threads'] for i in "
            "threadpoolctl.threadpool_info() if i['user_api'] == 'blas'))")
    proc = subprocess.run([sys.executable, "-c", code], env=setting_env("default"),
                          capture_output=True, text=True)
    return int(proc.stdout) if proc.returncode == 0 else None


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="processes per setting (default 3)")
    p.add_argument("--calls", type=int, default=15, help="timed calls per case and process")
    p.add_argument("--out", type=Path, default=RESULTS / "blas-threads",
                   help="output prefix (default benchmarks/results/blas-threads)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.calls)))
        return
    argv_used = sys.argv[1:] if argv is None else argv
    report: Dict[str, Any] = {
        "command": _common.command_line("blas_threads.py", argv_used),
        "machine": _common.machine_facts(),
        "loadavg_start": _common.loadavg(),
        "default_blas_threads": default_blas_threads(),
        "repeats": args.repeats,
        "calls": args.calls,
    }
    report["runs"] = measure(args.repeats, args.calls)
    report["rows"] = summarise(report["runs"])
    report["loadavg_end"] = _common.loadavg()
    print(_common.write_report(args.out, report, render))


if __name__ == "__main__":
    main()
