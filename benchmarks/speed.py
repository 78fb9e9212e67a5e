"""Speed of `spacy-rnn-ner.RNN.v1` and of the `rnn_ner` pipeline, side by side
with PyTorch's and Thinc's RNNs and with spaCy's own `ner`.

    python benchmarks/speed.py                 # full run (~12-20 min on 2 cores)
    python benchmarks/speed.py --quick         # smoke test (~1-2 min)
    python benchmarks/speed.py --skip-pipeline --threads 1

Prints Markdown tables and writes them to `benchmarks/results/speed.md`, with
every raw number in `benchmarks/results/speed.json` (`--quick` writes to
`benchmarks/cache/` instead, so a smoke test never overwrites real results).
See `benchmarks/README.md` for what each number means.

The pipeline section also runs `benchmarks/pipeline_speed.py` (the
accuracy config, `configs/conll03.cfg`, against spaCy's `ner` on CoNLL-2003
test, one BLAS thread) when `benchmarks/conll03.py convert` has been run;
`--conll-pipeline-steps 0` skips it.

Every figure that is compared with another comes from the same run, and, for
the layer, from the same process, measured one system right after the other on
identical inputs: absolute figures drift with the machine's load, ratios much
less. Each thread setting runs in a fresh subprocess whose BLAS/OpenMP
libraries read their thread count from the environment at load time.
"""
import argparse
import gc
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

REPO = _common.REPO
CACHE = REPO / "benchmarks" / "cache"
RESULTS = REPO / "benchmarks" / "results"
CONLL_TEST = REPO.parent / "shared" / "data" / "conll2003" / "test.iob"
CELLS = ("elman", "gru", "lstm")
N_GATES = {"elman": 1, "gru": 3, "lstm": 4}
BATCH = 64
MIN_LEN, MAX_LEN, EQUAL_LEN = 5, 60, 32
SYSTEMS = ("ours", "ours_c", "ours_numpy", "thinc", "torch")
# Our layer on its slower compute paths too (`_common.rnn_path`), where the
# machine picks a faster one: "ours" is the path it picks.
OTHER_PATHS = {"avx512": ("c", "numpy"), "c": ("numpy",), "numpy": ()}
PIPE_SYSTEMS = ("rnn_ner", "ner")
SETTLE_S = 0.15  # pause before each timed block (see layer_worker)
RETRY_PAUSE_S = 0.5
LOAD_SLACK = 0.3  # cores other processes may use beyond those we leave free


# --- Small helpers -------------------------------------------------------------


log = _common.logger()


def run_worker(kind: str, spec: Dict[str, Any], threads: int) -> Dict[str, Any]:
    """Run `kind` in a fresh interpreter with `threads` BLAS/OpenMP threads."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = dict(spec, out=str(Path(tmp) / "out.json"), threads=threads)
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind,
               "--worker-spec", str(spec_path)]
        proc = subprocess.run(cmd, env=_common.thread_env(threads, PYTHONHASHSEED="0"), cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"{kind} worker ({threads} threads) failed: rc={proc.returncode}")
        return json.loads(Path(spec["out"]).read_text())


def time_calls(
    fn: Callable[[Any], Any], prepare: Callable[[], Any], warmup: int, repeats: int
) -> Tuple[List[float], List[float]]:
    """Wall and CPU seconds (this process, all threads) of `fn(prepare())`
    per repeat; `prepare` runs outside the timers."""
    gc.collect()
    wall, cpu = [], []
    for i in range(warmup + repeats):
        arg = prepare()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(arg)
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if i >= warmup:
            wall.append(elapsed)
            cpu.append(elapsed_cpu)
    return wall, cpu


class LoadMeter:
    """How many cores other processes (and the hypervisor's steal) kept busy
    while a block ran: busy time of the whole machine from /proc/stat minus
    this process's own CPU time, over wall time. A block is *contended* when
    that exceeds the cores this measurement leaves free (nproc - threads) by
    more than LOAD_SLACK. /proc/stat counts in ticks (10 ms), so windows
    should last a few tenths of a second; off Linux, nothing is contended."""

    def __init__(self, threads: int):
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.allowed = max(0, (os.cpu_count() or 1) - threads) + LOAD_SLACK

    def snapshot(self) -> Tuple[Optional[int], float, float]:
        import resource

        busy = None
        try:
            with open("/proc/stat") as fileh:
                v = [int(x) for x in fileh.readline().split()[1:9]]
            busy = sum(v) - v[3] - v[4]  # all but idle and iowait (incl. steal)
        except (OSError, ValueError, IndexError):
            pass
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return busy, ru.ru_utime + ru.ru_stime, time.perf_counter()

    def others(self, start: Tuple[Optional[int], float, float]) -> Optional[float]:
        end = self.snapshot()
        if start[0] is None or end[0] is None or end[2] <= start[2]:
            return None
        busy_s = (end[0] - start[0]) / self.hz
        return max(0.0, busy_s - (end[1] - start[1])) / (end[2] - start[2])

    def contended(self, others: Optional[float]) -> bool:
        return others is not None and others > self.allowed


def block_torch() -> None:
    """Make `import torch` fail: thinc imports torch when it can (~180 MB RSS),
    which neither pipeline needs, so memory and start-up are measured without."""
    sys.modules["torch"] = None  # type: ignore[assignment]


def layer_flops_fwd(cell: str, n_dirs: int, nI: int, nH: int, n_tokens: int) -> int:
    """Matmul FLOPs of one forward pass: per token and direction, the input
    projection (G*H x nI) and the recurrent product (G*H x H), 2 FLOPs per
    multiply-add: 2 * G * H * (nI + H). Elementwise gate work is not counted,
    nor the recurrent products a sequence's first token skips."""
    return n_tokens * n_dirs * 2 * N_GATES[cell] * nH * (nI + nH)


# --- Layer worker --------------------------------------------------------------


def layer_cases(quick: bool) -> List[Dict[str, Any]]:
    dims = [(96, 128)] if quick else [(96, 128), (256, 256)]
    lengths = ["variable"] if quick else ["variable", "equal"]
    return [
        {"cell": cell, "bi": bi, "nI": nI, "nH": nH, "lengths": lens}
        for nI, nH in dims
        for lens in lengths
        for bi in (False, True)
        for cell in CELLS
    ]


def batch_lengths(kind: str, seed: int) -> List[int]:
    import numpy

    if kind == "equal":
        return [EQUAL_LEN] * BATCH
    rng = numpy.random.RandomState(seed)
    return rng.randint(MIN_LEN, MAX_LEN + 1, size=BATCH).tolist()


def measure_matmul(
    numpy, shapes: Sequence[Tuple[int, int, int]], samples: int, meter: "LoadMeter"
) -> List[Dict]:
    """float32 GFLOP/s of numpy.matmul on (m, k) @ (k, n): median over the
    undisturbed samples (all, flagged, if none), each a loop of >= 50 ms."""
    rng = numpy.random.RandomState(0)
    out = []
    for m, k, n in shapes:
        A = rng.standard_normal((m, k)).astype("float32")
        B = rng.standard_normal((k, n)).astype("float32")
        C = numpy.empty((m, n), dtype="float32")
        iters = 1
        while True:
            start = time.perf_counter()
            for _ in range(iters):
                numpy.matmul(A, B, out=C)
            if time.perf_counter() - start >= 0.05:
                break
            iters *= 2
        rates, others = [], []
        for _ in range(samples):
            snap = meter.snapshot()
            time.sleep(0.05)  # widens the load window
            start = time.perf_counter()
            for _ in range(iters):
                numpy.matmul(A, B, out=C)
            rates.append(2.0 * m * k * n * iters / (time.perf_counter() - start) / 1e9)
            others.append(meter.others(snap))
        clean = [r for r, o in zip(rates, others) if not meter.contended(o)]
        out.append({"shape": [m, k, n], "gflops": statistics.median(clean or rates),
                    "contended": not clean, "samples": rates, "others_cores": others})
    return out


def matmul_shapes(quick: bool) -> List[Tuple[int, int, int]]:
    """The layer's own big products: the input projection of a whole batch
    ((B*T) x nI @ nI x 4H) and one recurrent step (B x H @ H x 4H)."""
    shapes = []
    for nI, nH in [(96, 128)] if quick else [(96, 128), (256, 256)]:
        shapes += [(BATCH * EQUAL_LEN, nI, 4 * nH), (BATCH, nH, 4 * nH)]
    return shapes


def layer_worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    import numpy
    import thinc
    from thinc.api import LSTM, NumpyOps, set_current_ops
    from thinc.types import Padded

    sys.path.insert(0, str(REPO))
    from spacy_rnn_ner.layers import backend_info
    from spacy_rnn_ner.layers.rnn import RNN

    threads = spec["threads"]
    torch = None
    if spec["torch"]:
        try:
            import torch  # type: ignore[no-redef]

            torch.set_num_threads(threads)
        except ImportError:
            torch = None
    ops = NumpyOps()
    set_current_ops(ops)
    warmup, repeats, rounds = spec["warmup"], spec["repeats"], spec["rounds"]
    shapes = matmul_shapes(spec["quick"])
    ours_path = backend_info()["path"]
    log(f"layer worker: {threads} thread(s), torch={'yes' if torch else 'no'}, ours on {ours_path}")
    meter = LoadMeter(threads)
    matmul_before = measure_matmul(numpy, shapes, 7, meter)
    prepared = []
    for case in layer_cases(spec["quick"]):
        cell, bi, nI, nH = case["cell"], case["bi"], case["nI"], case["nH"]
        n_dirs = 2 if bi else 1
        nO = nH * n_dirs
        lengths = batch_lengths(case["lengths"], spec["seed"])
        rng = numpy.random.RandomState(spec["seed"] + 1)
        seqs = [rng.uniform(-1.0, 1.0, (n, nI)).astype("float32") for n in lengths]
        Xp = ops.list2padded(seqs)
        n_tokens = int(sum(lengths))
        dY = numpy.ones((Xp.data.shape[0], Xp.data.shape[1], nO), dtype="float32")

        def new_dY(dY=dY, Xp=Xp) -> Padded:
            # A fresh copy each call: backprop may consume its input in place.
            return Padded(dY.copy(), Xp.size_at_t, Xp.lengths, Xp.indices)

        runners: Dict[str, Dict[str, Tuple[Callable, Callable]]] = {}
        numpy.random.seed(spec["seed"])
        ours = RNN(nO, nI, cell=cell, bidirectional=bi)
        ours.initialize()
        runners["ours"] = _thinc_runners(ours, Xp, new_dY)
        if spec.get("paths", True):
            for path in OTHER_PATHS[ours_path]:
                runners[f"ours_{path}"] = _on_path(path, runners["ours"])
        if cell == "lstm" and spec.get("thinc", True):
            theirs = LSTM(nO, nI, bi=bi)
            theirs.initialize()
            runners["thinc"] = _thinc_runners(theirs, Xp, new_dY)
        if torch is not None:
            runners["torch"] = _torch_runners(torch, cell, bi, nI, nH, Xp, case["lengths"])
        flops = layer_flops_fwd(cell, n_dirs, nI, nH, n_tokens)
        row: Dict[str, Any] = dict(case, n_tokens=n_tokens, batch=BATCH, orders=[],
                                   flops={"fwd": flops, "fwdbwd": 3 * flops})
        for mode in ("fwd", "fwdbwd"):
            row[mode] = {system: {"blocks": []} for system in runners}
        prepared.append((row, runners))
    last_clean = True
    # Several rounds over all cases, so that a burst of load from other jobs
    # hits some samples of many figures rather than all samples of a few.
    for rnd in range(rounds):
        for index, (row, runners) in enumerate(prepared):
            # Rotate who goes first, so no system always follows the same one.
            order = [s for s in SYSTEMS if s in runners]
            shift = (index + rnd) % len(order)
            order = order[shift:] + order[:shift]
            row["orders"].append(order)
            for mode in ("fwd", "fwdbwd"):
                for system in order:
                    fn, prepare = runners[system][mode]
                    # Re-measure a block that other jobs disturbed, unless the
                    # previous one stayed disturbed too (sustained load: futile).
                    tries = 1 + (spec["retries"] if last_clean else 0)
                    best: Optional[Dict[str, Any]] = None
                    for attempt in range(tries):
                        start = meter.snapshot()
                        # Let idle BLAS/OpenMP threads of the previous system
                        # stop spinning (OpenBLAS: ~0.1 s) so they don't steal
                        # cores; the pause also widens the load window.
                        time.sleep(SETTLE_S if attempt == 0 else RETRY_PAUSE_S)
                        times, cpu_times = time_calls(fn, prepare, warmup, repeats)
                        others = meter.others(start)
                        block = {"times": times, "cpu_times": cpu_times, "others_cores": others,
                                 "contended": meter.contended(others), "attempt": attempt + 1}
                        if best is None or (others or 0.0) < (best["others_cores"] or 0.0):
                            best = block
                        if not block["contended"]:
                            break
                    assert best is not None
                    best["attempts"] = attempt + 1
                    last_clean = not best["contended"]
                    row[mode][system]["blocks"].append(best)
            if rnd == rounds - 1:
                summary = ", ".join(
                    f"{s} {row['n_tokens'] / _figure(row['fwdbwd'][s])['median_s']:,.0f}"
                    for s in order
                )
                log(f"  {row['cell']:5} {'bi' if row['bi'] else 'uni'} {row['nI']}/{row['nH']} "
                    f"{row['lengths']:8} fwd+bwd tok/s: {summary}")
        log(f"  round {rnd + 1}/{rounds} done")
    results = []
    for row, _ in prepared:
        for mode in ("fwd", "fwdbwd"):
            for res in row[mode].values():
                res.update(_figure(res))
        results.append(row)
    matmul_after = measure_matmul(numpy, shapes, 7, meter)
    return {
        "threads": threads,
        "torch": torch.__version__ if torch is not None else None,
        "thinc": thinc.__version__,
        "numpy": numpy.__version__,
        "ours_c_kernels": _ours_kernels(numpy),
        "ours_whole_steps": _ours_whole_steps(numpy),
        "ours_parallel_directions": _ours_parallel_directions(),
        "ours_path": ours_path,
        "warmup": warmup,
        "repeats": repeats,
        "rounds": rounds,
        "retries": spec["retries"],
        "load_allowed_cores": meter.allowed,
        "matmul": {"before": matmul_before, "after": matmul_after},
        "cases": results,
    }


def _figure(res: Dict[str, Any]) -> Dict[str, Any]:
    """Median over the blocks no other job disturbed, or over all of them
    (flagged `contended`) when every block was disturbed."""
    clean = [b for b in res["blocks"] if not b["contended"]]
    used = clean or res["blocks"]
    times = [t for b in used for t in b["times"]]
    # CPU time leaves out the time other jobs held the core, so it needs no
    # undisturbed blocks: all of them count.
    cpu = [t for b in res["blocks"] for t in b.get("cpu_times", ())]
    return {"times": times, "median_s": statistics.median(times),
            "cpu_median_s": statistics.median(cpu) if cpu else None,
            "contended": not clean, "clean_blocks": len(clean)}


def _ours_parallel_directions() -> bool:
    """Whether our bidirectional layer ran its two directions on two threads
    (needs threadpoolctl and BLAS allowed >= 2 threads)."""
    try:
        from spacy_rnn_ner.layers import rnn
    except ImportError:
        return False
    if not getattr(rnn, "PARALLEL_DIRECTIONS", False):
        return False
    if hasattr(rnn, "_blas_allows_threads"):
        return bool(rnn._blas_allows_threads())
    limiter = rnn.blas_limiter()  # older versions: creating it sets the limit
    if limiter is None:
        return False
    with limiter:
        return True


def _ours_kernels(numpy) -> bool:
    """Whether our layer ran its fused C gate kernels (else the numpy ufunc path)."""
    from spacy_rnn_ner.layers import cells

    if hasattr(cells, "kernels_available"):
        return bool(cells.kernels_available(numpy, numpy.float32))
    return "spacy_rnn_ner.layers._cpu_kernels" in sys.modules


def _ours_whole_steps(numpy) -> bool:
    """Whether our layer ran its AVX-512 kernels (whole steps forward and
    backward, packed products, weight-gradient kernel), else numpy's matmul
    with the C gate kernels."""
    from spacy_rnn_ner.layers import cells

    return bool(getattr(cells, "packed_available", lambda *a: False)(numpy, numpy.float32))


def _on_path(path: str, runners: Dict[str, Tuple[Callable, Callable]]) -> Dict[str, Tuple[Callable, Callable]]:
    """`runners` with each call made on our compute path `path`."""

    def on_path(fn: Callable) -> Callable:
        def run(arg):
            with _common.rnn_path(path):
                fn(arg)

        return run

    return {mode: (on_path(fn), prepare) for mode, (fn, prepare) in runners.items()}


def _thinc_runners(model, Xp, new_dY) -> Dict[str, Tuple[Callable, Callable]]:
    def fwd(_):
        model(Xp, is_train=False)

    def fwdbwd(dYp):
        _, backprop = model(Xp, is_train=True)
        backprop(dYp)

    return {"fwd": (fwd, lambda: None), "fwdbwd": (fwdbwd, new_dY)}


def _torch_runners(torch, cell, bi, nI, nH, Xp, lengths_kind):
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

    torch.manual_seed(0)
    if cell == "lstm":
        rnn = torch.nn.LSTM(nI, nH, bidirectional=bi)
    elif cell == "gru":
        rnn = torch.nn.GRU(nI, nH, bidirectional=bi)
    else:
        rnn = torch.nn.RNN(nI, nH, nonlinearity="tanh", bidirectional=bi)
    rnn = rnn.float()
    # Padded is time-major and sorted by decreasing length, as torch expects.
    x = torch.from_numpy(Xp.data.copy())
    packed = None
    if lengths_kind == "variable":
        lengths = torch.as_tensor(Xp.lengths.astype("int64"))
        packed = pack_padded_sequence(x, lengths, enforce_sorted=True)
    base = packed.data if packed is not None else x

    def wrap(data):
        if packed is None:
            return data
        return PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                              packed.unsorted_indices)

    inference_input = wrap(base)

    def fwd(_):
        with torch.inference_mode():
            rnn(inference_input)

    def prepare():
        rnn.zero_grad(set_to_none=True)
        return wrap(base.detach().clone().requires_grad_(True))

    def fwdbwd(inputs):
        out, _ = rnn(inputs)
        (out.data if packed is not None else out).sum().backward()

    return {"fwd": (fwd, lambda: None), "fwdbwd": (fwdbwd, prepare)}


# --- Pipeline workers ----------------------------------------------------------


def read_texts(source: str, path: str, limit: Optional[int]) -> List[List[str]]:
    """Sentences as token lists: CoNLL IOB (first column, no -DOCSTART-) or a
    DocBin."""
    sentences: List[List[str]] = []
    if source == "conll":
        current: List[str] = []
        with open(path, encoding="utf8") as fileh:
            for line in fileh:
                fields = line.split()
                if not fields or fields[0] == "-DOCSTART-":
                    if current:
                        sentences.append(current)
                    current = []
                    continue
                current.append(fields[0])
        if current:
            sentences.append(current)
    else:
        import spacy
        from spacy.tokens import DocBin

        vocab = spacy.blank("en").vocab
        docs = DocBin().from_disk(path).get_docs(vocab)
        sentences = [[t.text for t in doc] for doc in docs if len(doc)]
    return sentences[:limit] if limit else sentences


def infer_worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    block_torch()
    import spacy

    sentences = read_texts(spec["text_source"], spec["text_path"], spec["text_limit"])
    texts = [" ".join(words) for words in sentences]
    n_words = sum(len(words) for words in sentences)
    nlps = {name: spacy.load(path) for name, path in spec["models"].items()}
    log(f"inference worker: {spec['threads']} thread(s), {len(texts)} texts, {n_words} words")
    out: Dict[str, Any] = {"n_texts": len(texts), "n_words": n_words, "systems": {}}
    for name, nlp in nlps.items():
        for _ in range(spec["warmup"]):
            list(nlp.pipe(texts[: max(1, len(texts) // 5)]))
        out["systems"][name] = {"times": [], "batch_size": nlp.batch_size,
                                "pipeline": nlp.pipe_names}
    names = list(nlps)
    meter = LoadMeter(spec["threads"])
    repeats = spec["repeats"]
    # Passes alternate; a pass other jobs disturbed is made up for, up to
    # twice the number of passes in all.
    for rep in range(2 * repeats):
        for name in names[rep % len(names):] + names[: rep % len(names)]:
            res = out["systems"][name]
            passes = res.setdefault("passes", [])
            if sum(not p["contended"] for p in passes) >= repeats:
                continue
            gc.collect()
            snap = meter.snapshot()
            start = time.perf_counter()
            docs = list(nlps[name].pipe(texts))
            elapsed = time.perf_counter() - start
            others = meter.others(snap)
            passes.append({"seconds": elapsed, "others_cores": others,
                           "contended": meter.contended(others)})
            res["n_tokens"] = sum(len(doc) for doc in docs)
            res["n_ents"] = sum(len(doc.ents) for doc in docs)
            del docs
    for res in out["systems"].values():
        clean = [p["seconds"] for p in res["passes"] if not p["contended"]]
        res["times"] = clean or [p["seconds"] for p in res["passes"]]
        res["contended"] = not clean
        res["median_s"] = statistics.median(res["times"])
        res["words_per_s"] = n_words / res["median_s"]
    out["load_allowed_cores"] = meter.allowed
    return out


def train_worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """init_nlp from the config, then nlp.update over word-sized minibatches of
    the training corpus (repeating epochs) until `words` words are seen."""
    block_torch()
    import random
    import resource

    from spacy.training.initialize import init_nlp
    from spacy.training import minibatch_by_words
    from spacy.util import load_config, registry, resolve_dot_names
    from spacy.schemas import ConfigSchemaTraining

    overrides = {"paths.train": spec["train"], "paths.dev": spec["dev"]}
    config = load_config(spec["config"], overrides=overrides, interpolate=False)
    nlp = init_nlp(config, use_gpu=-1)
    config = nlp.config.interpolate()
    T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    (train_corpus,) = resolve_dot_names(config, [T["train_corpus"]])
    optimizer = T["optimizer"]
    examples = list(train_corpus(nlp))
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = random.Random(spec["seed"])
    meter = LoadMeter(spec["threads"])
    target, warm = spec["words"], False
    # Updates are grouped into windows of >= 0.5 s, each checked for other
    # jobs' load; words/s counts the undisturbed windows when they hold at
    # least half the target, going on (up to 3x the target) to collect them.
    windows: List[Dict[str, Any]] = []
    window = {"words": 0, "seconds": 0.0, "batches": 0, "snap": meter.snapshot()}
    losses: Dict[str, float] = {}

    def totals(clean_only: bool) -> Tuple[int, float, int]:
        ws = [w for w in windows if not (clean_only and w["contended"])]
        return (sum(w["words"] for w in ws), sum(w["seconds"] for w in ws),
                sum(w["batches"] for w in ws))

    while totals(True)[0] < target and totals(False)[0] < 3 * target:
        rng.shuffle(examples)
        for batch in minibatch_by_words(examples, size=spec["batch_words"], tolerance=0.2):
            n = sum(len(eg.reference) for eg in batch)
            start = time.perf_counter()
            nlp.update(batch, drop=T["dropout"], sgd=optimizer, losses=losses)
            took = time.perf_counter() - start
            if not warm:  # first update: lazy allocations, not steady state
                warm = True
                window["snap"] = meter.snapshot()
                continue
            window["words"] += n
            window["seconds"] += took
            window["batches"] += 1
            if window["seconds"] >= 0.5:
                others = meter.others(window.pop("snap"))
                window.update(others_cores=others, contended=meter.contended(others))
                windows.append(window)
                window = {"words": 0, "seconds": 0.0, "batches": 0, "snap": meter.snapshot()}
                if totals(True)[0] >= target or totals(False)[0] >= 3 * target:
                    break
    rss_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    contended = totals(True)[0] < target / 2
    words, seconds, n_batches = totals(not contended)
    return {
        "words": words,
        "batches": n_batches,
        "seconds": seconds,
        "words_per_s": words / seconds,
        "contended": contended,
        "windows": windows,
        "load_allowed_cores": meter.allowed,
        "rss_before_train_mib": rss_before_kib / 1024,
        "rss_peak_mib": rss_peak_kib / 1024,
        "n_train_examples": len(examples),
        "losses": {name: float(value) for name, value in losses.items()},
    }


# --- Pipeline driver -----------------------------------------------------------


def run_checked(cmd: List[str], what: str) -> float:
    log(f"{what}: {' '.join(shlex.quote(c) for c in cmd)}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"{what} failed (rc={proc.returncode})")
    return time.perf_counter() - start


def pipeline_missing() -> Optional[str]:
    needed = [REPO / "spacy_rnn_ner" / "pipeline.py", REPO / "corpus" / "build.py"]
    missing = [str(p.relative_to(REPO)) for p in needed if not p.exists()]
    return f"missing {', '.join(missing)}" if missing else None


def run_pipeline(args) -> Dict[str, Any]:
    py = sys.executable
    corpus_dir = CACHE / "corpus"
    models_dir = CACHE / "models"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    out: Dict[str, Any] = {}
    run_checked([py, "corpus/build.py", "--out-dir", str(corpus_dir)], "build corpus")
    train_path, dev_path = corpus_dir / "train.spacy", corpus_dir / "dev.spacy"
    ner_cfg = CACHE / "ner-efficiency.cfg"
    run_checked([py, "-m", "spacy", "init", "config", str(ner_cfg), "-l", "en", "-p",
                 "ner", "-o", "efficiency", "--force"], "spaCy ner config")
    configs = {"rnn_ner": str(REPO / "configs" / "lstm.cfg"), "ner": str(ner_cfg)}
    out["configs"] = {
        "rnn_ner": "configs/lstm.cfg",
        "ner": "python -m spacy init config -l en -p ner -o efficiency",
    }
    steps = args.steps
    out["train_steps"] = steps
    out["spacy_train"] = {}
    models = {}
    for name, cfg in configs.items():
        model_out = models_dir / name
        seconds = run_checked(
            [py, "-m", "spacy", "train", cfg, "--output", str(model_out),
             "--paths.train", str(train_path), "--paths.dev", str(dev_path),
             "--training.max_steps", str(steps), "--training.eval_frequency", str(steps)],
            f"train {name}",
        )
        meta = json.loads((model_out / "model-last" / "meta.json").read_text())
        perf = meta.get("performance", {})
        out["spacy_train"][name] = {
            "wall_s": seconds,
            "dev_ents_f": perf.get("ents_f"),
            "dev_ents_p": perf.get("ents_p"),
            "dev_ents_r": perf.get("ents_r"),
        }
        models[name] = str(model_out / "model-last")
    if CONLL_TEST.exists() and not args.no_conll:
        source, text_path = "conll", str(CONLL_TEST)
        out["texts"] = "../shared/data/conll2003/test.iob (CoNLL-2003 test, sentences)"
    else:
        source, text_path = "docbin", str(dev_path)
        out["texts"] = "bundled corpus dev set (CoNLL-2003 test file not found)"
    out["threads"] = {}
    for threads in args.threads:
        res: Dict[str, Any] = {}
        res["inference"] = run_worker("infer", {
            "models": models, "text_source": source, "text_path": text_path,
            "text_limit": 300 if args.quick else None,
            "warmup": 1, "repeats": args.pipe_repeats,
        }, threads)
        res["training"] = {name: [] for name in configs}
        names = list(configs)
        for rep in range(args.train_repeats):
            for name in names[rep % 2:] + names[: rep % 2]:
                log(f"training throughput: {name}, {threads} thread(s), repeat {rep + 1}")
                res["training"][name].append(run_worker("train", {
                    "config": configs[name], "train": str(train_path), "dev": str(dev_path),
                    "words": args.train_words, "batch_words": 1000, "seed": args.seed,
                }, threads))
        out["threads"][str(threads)] = res
    conll_docs = REPO / "benchmarks" / "cache" / "conll03" / "test.spacy"
    if args.conll_pipeline_steps and not args.quick and conll_docs.exists():
        # The accuracy config on CoNLL-2003 against spaCy's ner, one BLAS
        # thread (benchmarks/pipeline_speed.py, run as its own process).
        report = CACHE / "pipeline-speed-conll03"
        log("conll03.cfg pipeline speed (benchmarks/pipeline_speed.py)")
        subprocess.run([py, "benchmarks/pipeline_speed.py", "--train-steps",
                        str(args.conll_pipeline_steps), "--out", str(report)],
                       cwd=REPO, env=_common.thread_env(1), check=True)
        out["conll03"] = _common.read_json(report.with_suffix(".json"))
    elif args.conll_pipeline_steps and not args.quick:
        out["conll03"] = {"skipped": f"{conll_docs.relative_to(REPO)} not found: run "
                                     "python benchmarks/conll03.py convert first"}
    return out


# --- Machine facts -------------------------------------------------------------


def machine_facts(with_torch: bool) -> Dict[str, Any]:
    """The shared facts, plus how numpy's BLAS and thinc's BLIS were built and
    the thread pools (threadpoolctl)."""
    import numpy

    facts = _common.machine_facts(
        ("numpy", "thinc", "spacy", "torch", "blis", "threadpoolctl", "spacy-rnn-ner"))
    if not with_torch:
        facts["versions"]["torch"] = None
    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        facts["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
        facts["numpy_blas_config"] = blas.get("openblas configuration")
    except Exception:  # older numpy: no mode="dicts"
        facts["numpy_blas"] = None
    facts["blis_threading"] = _blis_threading()
    facts["rnn_paths"] = _rnn_paths()
    try:
        import threadpoolctl

        facts["threadpools"] = threadpoolctl.threadpool_info()
    except ImportError:
        facts["threadpools"] = None
    return facts


def _rnn_paths() -> Optional[Dict[str, Any]]:
    """The compute paths of our layer that run here, and the one it picks."""
    try:
        sys.path.insert(0, str(REPO))
        from spacy_rnn_ner.layers import backend_info, backends
    except ImportError:
        return None
    return {"available": backends.available(), "picked": backend_info()["path"]}


def _blis_threading() -> Optional[bool]:
    """Whether thinc's BLIS (used by LSTM.v1's kernels) was built with threads."""
    try:
        import ctypes

        import blis.cy

        return bool(ctypes.CDLL(blis.cy.__file__).bli_info_get_enable_threading())
    except Exception:
        return None


def torch_available() -> bool:
    try:
        return metadata.version("torch") is not None and _can_import("torch")
    except metadata.PackageNotFoundError:
        return False


def _can_import(module: str) -> bool:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return proc.returncode == 0


# --- Report --------------------------------------------------------------------


DISTURBED = "†"


def fmt_rate(x: Optional[float], disturbed: bool = False) -> str:
    return "n/a" if x is None else f"{x:,.0f}" + (DISTURBED if disturbed else "")


def fmt_ratio(x: Optional[float], disturbed: bool = False) -> str:
    return "n/a" if x is None else f"{x:.2f}" + (DISTURBED if disturbed else "")


def fmt_pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def table(header: Sequence[str], rows: List[Sequence[str]], align: str = "") -> List[str]:
    align = align or "l" * len(header)
    seps = [":--" if a == "l" else "--:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(seps) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def peak_gflops(worker: Dict[str, Any]) -> float:
    """Best undisturbed matmul median (best of all if every one was disturbed)."""
    ms = [m for key in ("before", "after") for m in worker["matmul"][key]]
    clean = [m["gflops"] for m in ms if not m.get("contended")]
    return max(clean or [m["gflops"] for m in ms])


def derive_layer(worker: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per case and mode: tokens/s per system, ratios, GFLOP/s, share of peak."""
    peak = peak_gflops(worker)
    rows = []
    for case in worker["cases"]:
        for mode in ("fwd", "fwdbwd"):
            tps = {s: case["n_tokens"] / r["median_s"] for s, r in case[mode].items()}
            cpu_tps = {s: case["n_tokens"] / r["cpu_median_s"] for s, r in case[mode].items()
                       if r.get("cpu_median_s")}
            gflops = {s: case["flops"][mode] / r["median_s"] / 1e9
                      for s, r in case[mode].items()}
            rows.append({
                "threads": worker["threads"], "cell": case["cell"], "bi": case["bi"],
                "nI": case["nI"], "nH": case["nH"], "lengths": case["lengths"],
                "mode": mode, "tokens_per_s": tps, "cpu_tokens_per_s": cpu_tps, "gflops": gflops,
                "peak_fraction": {s: g / peak for s, g in gflops.items()},
                "ours_over_torch": tps["ours"] / tps["torch"] if "torch" in tps else None,
                "ours_over_thinc": tps["ours"] / tps["thinc"] if "thinc" in tps else None,
                "contended": {s: r["contended"] for s, r in case[mode].items()},
            })
    return rows


def cell_vs_lstm(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """(time per token of cell / of LSTM) / (FLOPs of cell / of LSTM), same
    system, shapes, mode and threads: 1.0 = same time per FLOP; above 1 = the
    cell spends more time per FLOP than the LSTM (fixed per-step costs)."""
    key = lambda r: (r["threads"], r["bi"], r["nI"], r["nH"], r["lengths"], r["mode"])
    lstm = {key(r): r for r in rows if r["cell"] == "lstm"}
    out = []
    for r in rows:
        if r["cell"] == "lstm" or key(r) not in lstm:
            continue
        base = lstm[key(r)]
        flop_ratio = N_GATES[r["cell"]] / N_GATES["lstm"]
        entry = dict(threads=r["threads"], cell=r["cell"], bi=r["bi"], nI=r["nI"], nH=r["nH"],
                     lengths=r["lengths"], mode=r["mode"], flop_ratio=flop_ratio)
        for system in ("ours", "torch"):
            if system in r["tokens_per_s"] and system in base["tokens_per_s"]:
                time_ratio = base["tokens_per_s"][system] / r["tokens_per_s"][system]
                entry[system] = {"time_ratio": time_ratio, "normalised": time_ratio / flop_ratio,
                                 "contended": r["contended"][system]
                                 or base["contended"][system]}
            else:
                entry[system] = None
        out.append(entry)
    return out


def render(results: Dict[str, Any]) -> str:
    meta = results["meta"]
    facts = meta["machine"]
    v = facts["versions"]
    lines = [
        "# Speed benchmarks",
        "",
        f"Generated {facts['date']} by",
        "",
        "```",
        meta["command"],
        "```",
        "",
        "**Read the ratios, not the absolute figures.** They come from a shared "
        f"{facts['cpu_count']}-core machine on which colleagues were running jobs at the "
        f"same time (load average at start {_loads(facts.get('loadavg'))}, "
        f"at end {_loads(facts.get('loadavg_end'))}). Every compared figure "
        "was measured in the same run, one system right after the other on identical "
        "inputs (same process for the layer). See `benchmarks/README.md` for what each "
        "number means.",
        "",
        f"Other jobs' load is measured during every timed block (`/proc/stat` busy time "
        f"minus this process's CPU time): a block is *disturbed* when others kept more "
        f"than the cores a measurement leaves free (nproc - threads) + {LOAD_SLACK} busy. "
        "Disturbed layer blocks are re-measured (up to `--retries` times), disturbed "
        "`nlp.pipe` passes are made up for, disturbed training windows are left out; a "
        f"figure is the median of its undisturbed samples. **{DISTURBED}** marks a figure "
        "(and the ratios using it) for which *every* sample was disturbed: not reliable. "
        + disturbed_summary(results),
        "",
        "## Machine",
        "",
    ]
    lines += table(["Fact", "Value"], [
        ["CPU", f"{facts['cpu']} ({', '.join(facts.get('simd') or [])})"],
        ["nproc / usable", f"{facts['cpu_count']} / {facts['cpus_allowed']}"],
        ["RNN compute paths", _paths_fact(facts.get("rnn_paths"))],
        ["Python", facts["python"]],
        ["numpy", f"{v['numpy']} ({facts['numpy_blas']}; {facts.get('numpy_blas_config')})"],
        ["thinc", f"{v['thinc']} (LSTM.v1 runs on blis {v.get('blis')})"],
        ["spaCy", v["spacy"]],
        ["torch", v["torch"] or "n/a (not importable)"],
        ["threadpoolctl", ("not installed" if facts["threadpools"] is None
                           else f"{v.get('threadpoolctl')} (thread pools in the JSON)")],
    ])
    layer = results.get("layer")
    if layer:
        lines += render_layer(layer, facts.get("blis_threading"))
    else:
        lines += ["", "## Layer", "", "Skipped (`--skip-layer`)."]
    pipe = results.get("pipeline")
    if pipe and "skipped" not in pipe:
        lines += render_pipeline(pipe)
    else:
        reason = pipe["skipped"] if pipe else "--skip-pipeline"
        lines += ["", "## Pipeline", "", f"Skipped ({reason})."]
    lines += ["", "Raw numbers (every repeat): `speed.json` next to this file.", ""]
    return "\n".join(lines)


def _paths_fact(paths: Optional[Dict[str, Any]]) -> str:
    if not paths:
        return "?"
    return (", ".join(f"`{p}`" for p in paths["available"]) + f" run here; picks `{paths['picked']}`"
            + ("" if "avx512" in paths["available"] else " (no AVX-512 path: CPU or build lacks it)"))


def _loads(loads: Optional[List[float]]) -> str:
    return " / ".join(f"{x:.2f}" for x in loads) if loads else "?"


def _rate_cells(t: Dict[str, float], c: Dict[str, bool]) -> List[str]:
    """ours, torch, thinc tokens/s, then ours/torch and ours/thinc."""
    cells = [fmt_rate(t.get(s), c.get(s, False)) for s in ("ours", "torch", "thinc")]
    for other in ("torch", "thinc"):
        ratio = t["ours"] / t[other] if other in t else None
        cells.append(fmt_ratio(ratio, c["ours"] or c.get(other, False)))
    return cells


def disturbed_summary(results: Dict[str, Any]) -> str:
    parts = []
    layer = results.get("layer")
    if layer:
        for w in layer["workers"]:
            figures = [r for c in w["cases"] for m in ("fwd", "fwdbwd") for r in c[m].values()]
            blocks = [b for r in figures for b in r["blocks"]]
            parts.append(
                f"Layer, {w['threads']} thread(s): {sum(r['contended'] for r in figures)} of "
                f"{len(figures)} figures {DISTURBED}; {sum(b['attempts'] > 1 for b in blocks)} "
                f"of {len(blocks)} blocks re-measured, {sum(b['contended'] for b in blocks)} "
                "still disturbed."
            )
    pipe = results.get("pipeline")
    if pipe and "threads" in pipe:
        for threads, res in pipe["threads"].items():
            passes = [p for s in res["inference"]["systems"].values() for p in s["passes"]]
            windows = [w for runs in res["training"].values() for r in runs
                       for w in r["windows"]]
            parts.append(
                f"Pipeline, {threads} thread(s): {sum(p['contended'] for p in passes)} of "
                f"{len(passes)} inference passes and {sum(w['contended'] for w in windows)} "
                f"of {len(windows)} training windows disturbed."
            )
    return " ".join(parts)


def render_layer(layer: Dict[str, Any], blis_threading: Optional[bool]) -> List[str]:
    workers = layer["workers"]
    first = workers[0]
    lines = [
        "",
        "## Layer: `spacy-rnn-ner.RNN.v1` (ours) vs `torch.nn.*` vs thinc `LSTM.v1`",
        "",
        f"Batch of {BATCH} sequences, lengths uniform {MIN_LEN}-{MAX_LEN} (fixed seed, "
        f"`variable`) or all {EQUAL_LEN} (`equal`); float32; one layer; `nI/H` = input "
        "width / hidden width per direction. Figures are real tokens per second, median "
        f"of {first['rounds'] * first['repeats']} timed calls ({first['rounds']} rounds over "
        f"all cases x {first['repeats']} calls, each block after {first['warmup']} untimed "
        "calls). "
        "`fwd` = inference forward (`model(Xp, is_train=False)`; torch under "
        "`inference_mode`); `fwd+bwd` = training forward + backward incl. input "
        "gradient. Ratios are our tokens/s over theirs: **above 1 = ours faster**. "
        "`%peak` = achieved matmul GFLOP/s (formula below) over the measured numpy "
        "matmul peak at the same thread count. Thinc has only an LSTM"
        + ("; its BLIS is built without threading, so it runs on one thread. "
           if blis_threading is False else ". ")
        + "Ours ran with "
        + (
            "its AVX-512 kernels (`_cpu_kernels`: each step's products and gates in one "
            "kernel; backprop's steps in one call with packed weights; the weight "
            "gradients in one kernel)."
            if first.get("ours_whole_steps")
            else "its fused C gate kernels (`_cpu_kernels`) and numpy's matmul."
            if first.get("ours_c_kernels")
            else "its numpy ufunc gate code (C kernels not built)."
        )
        + " Bidirectional layers ran their two directions on two threads (BLAS held to one "
        "thread each) at thread counts: "
        + (", ".join(str(w["threads"]) for w in workers if w.get("ours_parallel_directions")) or "none")
        + ".",
        "",
    ]
    lines += render_targets(workers, layer["derived"])
    lines += [
        "",
        "### Matmul peak (numpy float32, GFLOP/s, median; measured before and after the layer cases)",
        "",
    ]
    rows = []
    for w in workers:
        for before, after in zip(w["matmul"]["before"], w["matmul"]["after"]):
            m, k, n = before["shape"]
            rows.append([w["threads"], f"{m}x{k} @ {k}x{n}",
                         f"{before['gflops']:.1f}" + (DISTURBED if before.get("contended") else ""),
                         f"{after['gflops']:.1f}" + (DISTURBED if after.get("contended") else "")])
    lines += table(["threads", "product", "before", "after"], rows, "rlrr")
    lines += ["", "Peak used for `%peak`: " + ", ".join(
        f"{w['threads']} thread(s) {peak_gflops(w):.1f} GFLOP/s" for w in workers) + "."]

    derived = layer["derived"]
    headline = [r for r in derived if r["cell"] == "lstm" and r["bi"] and r["nI"] == 96
                and r["nH"] == 128]
    if headline:
        lines += ["", "### Headline: BiLSTM 96/128", ""]
        hrows = []
        for r in headline:
            t, c = r["tokens_per_s"], r["contended"]
            hrows.append([r["threads"], r["lengths"], MODE_NAMES[r["mode"]],
                          *_rate_cells(t, c), fmt_pct(r["peak_fraction"]["ours"])])
        lines += table(["threads", "lengths", "mode", "ours tok/s", "torch tok/s",
                        "thinc tok/s", "ours/torch", "ours/thinc", "ours %peak"],
                       hrows, "rllrrrrrr")
    for w in workers:
        for mode in ("fwd", "fwdbwd"):
            lines += ["", f"### {MODE_NAMES[mode]}, {w['threads']} thread(s)", ""]
            rows = []
            for r in derived:
                if r["threads"] != w["threads"] or r["mode"] != mode:
                    continue
                t, pf, c = r["tokens_per_s"], r["peak_fraction"], r["contended"]
                rows.append([r["cell"], "bi" if r["bi"] else "uni", f"{r['nI']}/{r['nH']}",
                             r["lengths"], *_rate_cells(t, c), fmt_pct(pf["ours"]),
                             fmt_pct(pf.get("torch"))])
            lines += table(["cell", "dirs", "nI/H", "lengths", "ours tok/s", "torch tok/s",
                            "thinc tok/s", "ours/torch", "ours/thinc", "ours %peak",
                            "torch %peak"], rows, "lllrrrrrrrr")
    lines += render_paths(workers, derived)
    lines += [
        "",
        "### GRU and Elman vs LSTM, normalised by FLOPs",
        "",
        "`time` = time per token of the cell / of the LSTM on the same shapes, system, "
        "mode and threads; `FLOPs` = their FLOP ratio (GRU 3/4, Elman 1/4); `norm` = "
        "time / FLOPs: 1.00 = the same time per FLOP as the LSTM, above 1 = more "
        "(fixed per-step costs weigh more on a cheaper cell).",
        "",
    ]
    rows = []
    for e in layer["cell_vs_lstm"]:
        o, tt = e["ours"], e["torch"]
        rows.append([e["threads"], e["cell"], "bi" if e["bi"] else "uni",
                     f"{e['nI']}/{e['nH']}", e["lengths"], MODE_NAMES[e["mode"]],
                     f"{e['flop_ratio']:.2f}",
                     fmt_ratio(o and o["time_ratio"], bool(o and o["contended"])),
                     fmt_ratio(o and o["normalised"], bool(o and o["contended"])),
                     fmt_ratio(tt and tt["time_ratio"], bool(tt and tt["contended"])),
                     fmt_ratio(tt and tt["normalised"], bool(tt and tt["contended"]))])
    lines += table(["threads", "cell", "dirs", "nI/H", "lengths", "mode", "FLOPs",
                    "ours time", "ours norm", "torch time", "torch norm"], rows, "rlllllrrrrr")
    lines += [
        "",
        "FLOPs (matmuls only, 2 per multiply-add): forward, per token and direction, "
        "`2·G·H·(nI + H)` with G = 1 (Elman), 3 (GRU), 4 (LSTM) gates; backward = 2× "
        "forward (`dX` and `dW` for both the input and the recurrent weights), so "
        "`fwd+bwd` = 3× forward. Elementwise gate arithmetic is not counted, which "
        "is why cheap cells look less efficient per FLOP.",
    ]
    return lines


MODE_NAMES = {"fwd": "fwd", "fwdbwd": "fwd+bwd"}


# Issue #13's targets at 1 thread, ours over torch: the AVX-512 path at
# least as fast as torch, the portable paths (any x86-64/aarch64 CPU) 0.8x.
TARGETS = {"avx512": 1.0, "c": 0.8, "numpy": 0.8}


def path_systems(workers: List[Dict[str, Any]]) -> Dict[str, str]:
    """Compute path -> system name in the results ("ours" is the picked one)."""
    path = workers[0].get("ours_path")
    if not path:
        return {}
    return {path: "ours", **{p: f"ours_{p}" for p in OTHER_PATHS.get(path, ())}}


def target_rows(workers: List[Dict[str, Any]], derived: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per thread count, path, mode and lengths ("all" too): the ratios of
    our tokens/s over torch's across the cases, by wall and CPU time, with
    the median, the minimum and how many cases reach the path's target."""
    out = []
    kinds = sorted({r["lengths"] for r in derived})
    groups = kinds + ["all"] if len(kinds) > 1 else kinds
    for threads in sorted({r["threads"] for r in derived}):
        for path, system in path_systems(workers).items():
            for mode in MODE_NAMES:
                for lengths in groups:
                    rows = [r for r in derived if r["threads"] == threads and r["mode"] == mode
                            and lengths in ("all", r["lengths"]) and system in r["tokens_per_s"]
                            and "torch" in r["tokens_per_s"]]
                    if not rows:
                        continue
                    entry: Dict[str, Any] = {"threads": threads, "path": path, "mode": mode,
                                             "lengths": lengths, "target": TARGETS.get(path),
                                             "cases": len(rows)}
                    for clock, key in (("wall", "tokens_per_s"), ("cpu", "cpu_tokens_per_s")):
                        ratios = [r[key][system] / r[key]["torch"] for r in rows
                                  if system in r.get(key, {}) and "torch" in r.get(key, {})]
                        if not ratios:
                            entry[clock] = None
                            continue
                        entry[clock] = {
                            "median": statistics.median(ratios), "min": min(ratios),
                            "reached": sum(x >= (entry["target"] or 0.0) for x in ratios),
                            "n": len(ratios),
                            "disturbed": clock == "wall" and any(
                                r["contended"].get(system) or r["contended"].get("torch")
                                for r in rows),
                        }
                    out.append(entry)
    return out


def render_targets(workers: List[Dict[str, Any]], derived: List[Dict[str, Any]]) -> List[str]:
    """Each compute path over torch, summarised against issue #13's targets."""
    lines = ["", "### Targets: each compute path over torch", ""]
    paths = path_systems(workers)
    if not any("torch" in r["tokens_per_s"] for r in derived):
        return lines + ["Not measured: torch is not installed (`pip install -e \".[bench]\"`) "
                        "or was left out (`--no-torch`)."]
    lines += [
        "Our tokens/s over torch's (**above 1 = ours faster**) across the cases below, per "
        "compute path (run here: " + ", ".join(f"`{p}`" for p in paths) + "). Targets "
        "(issue #13, 1 thread): " + ", ".join(f"`{p}` >= {t:.1f}x" for p, t in TARGETS.items())
        + ". `wall` = from wall-clock medians (the report's tables); `cpu` = from medians "
        "of this process's CPU time per call, which leaves out the time other jobs held "
        "the core (on a loaded machine the steadier of the two; at 1 thread both count one "
        "core). `reached` = cases at or above the target. A wall figure marked "
        f"{DISTURBED} includes a case measured only under other jobs' load.",
        "",
    ]
    rows = []
    for e in target_rows(workers, derived):
        cells = []
        for clock in ("wall", "cpu"):
            f = e[clock]
            if f is None:
                cells += ["n/a"] * 3
                continue
            cells += [fmt_ratio(f["median"], f["disturbed"]), fmt_ratio(f["min"], f["disturbed"]),
                      f"{f['reached']}/{f['n']}"]
        target = "n/a" if e["target"] is None else f"{e['target']:.1f}"
        rows.append([e["threads"], f"`{e['path']}`", MODE_NAMES[e["mode"]], e["lengths"], target,
                     *cells])
    return lines + table(["threads", "path", "mode", "lengths", "target", "wall median",
                          "wall min", "wall reached", "cpu median", "cpu min", "cpu reached"],
                         rows, "rlllrrrrrrr")


def render_paths(workers: List[Dict[str, Any]], derived: List[Dict[str, Any]]) -> List[str]:
    """Our layer on each compute path the machine runs, side by side (and
    over torch where torch ran)."""
    path = workers[0].get("ours_path")
    others = [p for p in OTHER_PATHS.get(path or "", ()) if any(
        f"ours_{p}" in r["tokens_per_s"] for r in derived)]
    if not others:
        return []
    paths = [path, *others]
    systems = ["ours", *(f"ours_{p}" for p in others)]
    has_torch = any("torch" in r["tokens_per_s"] for r in derived)
    has_cpu = has_torch and any("torch" in r.get("cpu_tokens_per_s", {}) for r in derived)
    lines = [
        "",
        "### Our compute paths side by side",
        "",
        f"The same layer and inputs on each path this machine runs (`{path}` is the one it "
        "picks; the others are forced with `benchmarks/_common.py:rnn_path`): tokens/s"
        + (", and each over torch's." if has_torch else " (torch not installed: no ratios).")
        + " `avx512` = whole-step AVX-512 kernels; `c` = C gate kernels with numpy's "
        "matmul (any CPU); `numpy` = numpy ufuncs (no C kernels)."
        + (" `cpu` columns: the same ratios from process CPU time (see \"Targets\")."
           if has_cpu else ""),
        "",
    ]
    header = ["threads", "mode", "cell", "dirs", "nI/H", "lengths", *(f"{p} tok/s" for p in paths)]
    if has_torch:
        header += [f"{p}/torch" for p in paths]
    if has_cpu:
        header += [f"{p}/torch cpu" for p in paths]
    rows = []
    for r in derived:
        t, c = r["tokens_per_s"], r["contended"]
        row = [r["threads"], MODE_NAMES[r["mode"]], r["cell"], "bi" if r["bi"] else "uni",
               f"{r['nI']}/{r['nH']}", r["lengths"],
               *(fmt_rate(t.get(s), c.get(s, False)) for s in systems)]
        if has_torch:
            row += [fmt_ratio(t[s] / t["torch"] if s in t and "torch" in t else None,
                              c.get(s, False) or c.get("torch", False)) for s in systems]
        if has_cpu:
            ct = r.get("cpu_tokens_per_s", {})
            row += [fmt_ratio(ct[s] / ct["torch"] if s in ct and "torch" in ct else None)
                    for s in systems]
        rows.append(row)
    return lines + table(header, rows, "rllllr" + "r" * (len(header) - 6))


def render_pipeline(pipe: Dict[str, Any]) -> List[str]:
    lines = [
        "",
        "## Pipeline: `rnn_ner` (configs/lstm.cfg) vs spaCy `ner` (efficiency config)",
        "",
        f"Both trained in this run on the bundled corpus for {pipe['train_steps']} steps "
        "(`spacy train ... --training.max_steps N`, models in `benchmarks/cache/`). "
        f"Inference texts: {pipe['texts']}; `nlp.pipe`, 1 process, the model's default "
        "batch size, tokenizer included; words = whitespace tokens of the input; "
        "median of repeats, the two systems alternating in one process. Training: a "
        "fresh process per system and repeat: `init_nlp` from the config, then "
        "`nlp.update` on 1000-word minibatches (first update not timed); peak RSS = "
        "`ru_maxrss` of that process (torch import blocked in both, as neither needs it).",
        "",
    ]
    rows = []
    for threads, res in pipe["threads"].items():
        inf = res["inference"]
        ws = {n: s["words_per_s"] for n, s in inf["systems"].items()}
        wc = {n: s["contended"] for n, s in inf["systems"].items()}
        tr, tc = {}, {}
        for n, runs in res["training"].items():
            clean = [r["words_per_s"] for r in runs if not r["contended"]]
            tr[n] = statistics.median(clean or [r["words_per_s"] for r in runs])
            tc[n] = not clean
        rss = {n: max(r["rss_peak_mib"] for r in runs) for n, runs in res["training"].items()}
        rss0 = {n: max(r["rss_before_train_mib"] for r in runs)
                for n, runs in res["training"].items()}
        for name in PIPE_SYSTEMS:
            rows.append([threads, f"`{name}`", fmt_rate(ws[name], wc[name]),
                         fmt_rate(tr[name], tc[name]),
                         f"{rss0[name]:,.0f}", f"{rss[name]:,.0f}",
                         f"{pipe['spacy_train'][name]['dev_ents_f'] or 0:.3f}"])
        rows.append([threads, "**rnn_ner / ner**",
                     fmt_ratio(ws["rnn_ner"] / ws["ner"], wc["rnn_ner"] or wc["ner"]),
                     fmt_ratio(tr["rnn_ner"] / tr["ner"], tc["rnn_ner"] or tc["ner"]),
                     fmt_ratio(rss0["rnn_ner"] / rss0["ner"]),
                     fmt_ratio(rss["rnn_ner"] / rss["ner"]), ""])
    lines += table(["threads", "system", "inference words/s", "training words/s",
                    "RSS after init (MiB)", "training peak RSS (MiB)", "dev ents_f"],
                   rows, "rlrrrrr")
    first = next(iter(pipe["threads"].values()))["inference"]
    lines += [
        "",
        f"Inference set: {first['n_texts']:,} texts, {first['n_words']:,} words. "
        "`dev ents_f` (bundled dev set, after the short training) only shows both "
        "models learned something; it is not an accuracy comparison.",
    ]
    conll = pipe.get("conll03")
    if conll and "skipped" in conll:
        lines += ["", f"`configs/conll03.cfg` on CoNLL-2003: skipped, {conll['skipped']}."]
    elif conll:
        import pipeline_speed

        lines += ["", "### `configs/conll03.cfg` on CoNLL-2003 (`benchmarks/pipeline_speed.py`)", ""]
        lines += [line.replace("## ", "#### ", 1) if line.startswith("## ") else line
                  for line in pipeline_speed.render(conll).splitlines()[2:]]
    return lines


# --- Main ----------------------------------------------------------------------


def parse_args(argv: Optional[List[str]] = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="thread counts, each in a fresh subprocess (default: 1 2; --quick: 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: few cases and repeats; writes to benchmarks/cache/")
    p.add_argument("--skip-layer", action="store_true", help="skip the layer section")
    p.add_argument("--skip-pipeline", action="store_true", help="skip the pipeline section")
    p.add_argument("--no-torch", action="store_true", help="leave torch out even if importable")
    p.add_argument("--no-thinc", action="store_true", help="layer: leave thinc's LSTM out")
    p.add_argument("--picked-path-only", action="store_true",
                   help="layer: time our layer only on the compute path the machine picks, "
                        "not also on its slower ones")
    p.add_argument("--no-conll", action="store_true",
                   help="use the bundled dev set for inference even if CoNLL-2003 is present")
    p.add_argument("--warmup", type=int, default=None,
                   help="layer: untimed calls before each block of timed calls (default 2)")
    p.add_argument("--repeats", type=int, default=None,
                   help="layer: timed calls per figure per round (default 3)")
    p.add_argument("--rounds", type=int, default=None,
                   help="layer: rounds over all cases; a figure is the median of "
                        "rounds x repeats calls (default 3; --quick: 1)")
    p.add_argument("--steps", type=int, default=None, help="spacy train steps (default 200)")
    p.add_argument("--train-words", type=int, default=None,
                   help="words per training-throughput measurement (default 30000)")
    p.add_argument("--train-repeats", type=int, default=None,
                   help="training-throughput processes per system (default 3)")
    p.add_argument("--pipe-repeats", type=int, default=None,
                   help="timed nlp.pipe passes per system (default 5)")
    p.add_argument("--conll-pipeline-steps", type=int, default=400,
                   help="pipeline section: also run benchmarks/pipeline_speed.py with "
                        "configs/conll03.cfg models trained this many steps on CoNLL-2003 "
                        "(needs python benchmarks/conll03.py convert; 0: skip; not with --quick)")
    p.add_argument("--retries", type=int, default=2,
                   help="layer: re-measurements of a block other jobs disturbed (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="output prefix (default benchmarks/results/speed; --quick: "
                        "benchmarks/cache/speed-quick)")
    p.add_argument("--worker", choices=["layer", "infer", "train"], help=argparse.SUPPRESS)
    p.add_argument("--worker-spec", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    defaults = {"threads": [1] if q else [1, 2], "warmup": 1 if q else 2,
                "repeats": 3, "rounds": 1 if q else 3, "steps": 20 if q else 200,
                "train_words": 3000 if q else 30000, "train_repeats": 1 if q else 3,
                "pipe_repeats": 2 if q else 5,
                "out": CACHE / "speed-quick" if q else RESULTS / "speed"}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker_spec.read_text())
        worker = {"layer": layer_worker, "infer": infer_worker, "train": train_worker}
        result = worker[args.worker](spec)
        Path(spec["out"]).write_text(json.dumps(result))
        return
    argv_used = sys.argv[1:] if argv is None else argv
    command = _common.command_line("speed.py", argv_used)
    with_torch = not args.no_torch and torch_available()
    results: Dict[str, Any] = {"meta": {"command": command, "python": sys.executable,
                                        "machine": machine_facts(with_torch),
                                        "args": {k: str(v) if isinstance(v, Path) else v
                                                 for k, v in vars(args).items()}}}
    started = time.perf_counter()
    if not args.skip_layer:
        workers = []
        for threads in args.threads:
            workers.append(run_worker("layer", {
                "quick": args.quick, "warmup": args.warmup, "repeats": args.repeats,
                "rounds": args.rounds, "retries": args.retries,
                "seed": args.seed, "torch": with_torch, "paths": not args.picked_path_only,
                "thinc": not args.no_thinc,
            }, threads))
        derived = [row for w in workers for row in derive_layer(w)]
        results["layer"] = {"workers": workers, "derived": derived,
                            "cell_vs_lstm": cell_vs_lstm(derived)}
        results["meta"]["layer_seconds"] = time.perf_counter() - started
    if not args.skip_pipeline:
        missing = pipeline_missing()
        if missing:
            log(f"pipeline section skipped: {missing}")
            results["pipeline"] = {"skipped": missing}
        else:
            start = time.perf_counter()
            results["pipeline"] = run_pipeline(args)
            results["meta"]["pipeline_seconds"] = time.perf_counter() - start
    results["meta"]["total_seconds"] = time.perf_counter() - started
    results["meta"]["machine"]["loadavg_end"] = _common.loadavg()
    report = render(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(report)
    log(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
