"""Accuracy on CoNLL-2003 English: `rnn_ner` side by side with spaCy's own `ner`,
each trained under the same wall-clock budget.

    python benchmarks/conll03.py --budget-minutes 60                 # all steps
    python benchmarks/conll03.py --budget-minutes 60 --parallel \\
        --configs configs/lstm.cfg configs/conll03.cfg
    python benchmarks/conll03.py convert|train|evaluate|report [options]

Steps (`all`, the default, runs them in this order):

* `convert`: `spacy convert` train/dev/test (read by path from `--data`, never
  copied into the project) into `benchmarks/cache/conll03/{train,dev,test}.spacy`,
  then check tokens, sentences and entities per type against the data README.
* `train`: each `--configs` file (component `rnn_ner`) and spaCy's `ner`
  (`spacy init config -l en -p ner -o efficiency`, no vectors) for
  `--budget-minutes` of training each, in a fresh process per system.
* `evaluate`: model-best of each system on dev and test with spaCy's scorer,
  timed `nlp.pipe` over the test docs, size on disk.
* `report`: `benchmarks/results/conll03.{md,json,png}`.

How the budget is enforced: training runs in-process (`spacy.training.loop.train`,
the function behind `spacy train`) with spaCy's own `train_while_improving`
wrapped: a `before_update` hook raises `BudgetExhausted` before the first step
that would start after the budget is spent, and spaCy then saves model-last as
it does on any error. Dev evaluations and checkpoint saving are *not* charged to
the budget (the systems' configs evaluate at different frequencies), so the
budget is time spent on batching and updates. The updates after the last
evaluation are not lost: model-last is scored on dev and becomes model-best if
it is at least as good. Every config's own stopping criteria (`max_steps`,
`max_epochs`, `patience`) are switched off so the budget is the only one, unless
`--keep-stops`.

See `benchmarks/README.md` for what each number means.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = "benchmarks/cache/conll03"
DEFAULT_RESULTS = "benchmarks/results"
SPLITS = ("train", "dev", "test")
LABELS = ("LOC", "MISC", "ORG", "PER")
CURVE_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
SPACY_NER_CMD = ["-m", "spacy", "init", "config", "-l", "en", "-p", "ner", "-o", "efficiency"]

# /work/shared/data/README.md, "Verified counts" (these match the published
# CoNLL-2003 statistics). Sentences exclude -DOCSTART-.
EXPECTED = {
    "train": {"tokens": 203621, "sentences": 14041, "articles": 946,
              "ents": {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}},
    "dev": {"tokens": 51362, "sentences": 3250, "articles": 216,
            "ents": {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}},
    "test": {"tokens": 46435, "sentences": 3453, "articles": 231,
             "ents": {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}},
}
SHA256 = {
    "train": "eac0822f501353f265383ddf1edb0dcd42a1b6eefd3e383d7074db98c38eb41c",
    "dev": "aedc4ccbd1ae9795feaa0e86fe72d195b0258abed9d705b630d1c889276fac1e",
    "test": "0632f32c090ef31c223135b7fee3187a7cf8e65c4015c7866bb7783428cdd9a6",
}


def log(text: str) -> None:
    print(f"[conll03 {time.strftime('%H:%M:%S')}] {text}", flush=True)


def repo_path(path: str) -> Path:
    """Relative paths are relative to the repository root (as in the configs),
    whatever the working directory: weasel runs commands from benchmarks/."""
    p = Path(path)
    return p if p.is_absolute() else (REPO / p).resolve()


def show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return os.path.relpath(path.resolve(), REPO)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


# --- Systems -------------------------------------------------------------------


def systems_of(args, trained: bool = False) -> List[Dict[str, str]]:
    """[{name, dir, config, source}] for the systems, in order. With `trained`
    (evaluate, report) and neither --systems nor --configs given: the systems of
    the last train step, from run.json."""
    run_json = Path(args.workdir) / "run.json"
    if trained and args.systems is None and args.configs is None and run_json.exists():
        return read_json(run_json)["systems"]
    wanted = [s.strip() for s in (args.systems or "rnn_ner,spacy_ner").split(",") if s.strip()]
    unknown = set(wanted) - {"rnn_ner", "spacy_ner"}
    if unknown:
        raise SystemExit(f"--systems: unknown {sorted(unknown)}; use rnn_ner, spacy_ner")
    out = []
    if "rnn_ner" in wanted:
        for cfg in args.configs or ["configs/lstm.cfg"]:
            path = repo_path(cfg)
            if not path.exists():
                raise SystemExit(f"config not found: {cfg}")
            out.append({"name": f"rnn_ner ({path.stem})", "dir": f"rnn_ner-{path.stem}",
                        "config": str(path), "source": show(path)})
    if "spacy_ner" in wanted:
        cfg = Path(args.workdir) / "spacy_ner.cfg"
        out.append({"name": "spaCy ner (efficiency)", "dir": "spacy_ner", "config": str(cfg),
                    "source": "python " + " ".join(SPACY_NER_CMD)})
    if not out:
        raise SystemExit("no systems selected")
    return out


def thread_env(threads: int) -> Dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update({var: str(threads) for var in THREAD_VARS})
    return env


# --- convert -------------------------------------------------------------------


def read_articles(path: Path) -> Iterator[List[List[str]]]:
    """Articles of a CoNLL file as lists of sentences (lists of lines). Any
    whitespace-only line ends a sentence; -DOCSTART- lines start an article."""
    article: List[List[str]] = []
    sent: List[str] = []
    with path.open(encoding="utf8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if sent:
                    article.append(sent)
                    sent = []
            elif line.startswith("-DOCSTART-"):
                if sent:
                    article.append(sent)
                    sent = []
                if article:
                    yield article
                article = []
            else:
                sent.append(line)
    if sent:
        article.append(sent)
    if article:
        yield article


def write_grouped_copy(src: Path, dst: Path, n_sents: int) -> Dict[str, int]:
    """Copy `src` with every document marker written as `-DOCSTART- -X- O O`
    (test.iob has `-DOCSTART- -X- -X- O`, which spacy convert would read as a
    token) and, with n_sents > 0, one more marker every n_sents sentences
    within each article. spacy convert ignores `-n` once a file has markers, so
    this is how docs of n_sents sentences get made without crossing articles."""
    n_articles = n_docs = 0
    with dst.open("w", encoding="utf8") as out:
        for article in read_articles(src):
            n_articles += 1
            step = n_sents if n_sents > 0 else len(article)
            for i in range(0, len(article), step):
                n_docs += 1
                out.write("-DOCSTART- -X- O O\n\n")
                for sent in article[i:i + step]:
                    out.write("\n".join(sent) + "\n\n")
    return {"articles": n_articles, "docs": n_docs}


def count_docbin(path: Path) -> Dict[str, Any]:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    ents = {label: 0 for label in LABELS}
    tokens = sentences = docs = 0
    for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
        docs += 1
        tokens += len(doc)
        sentences += sum(1 for _ in doc.sents)
        for ent in doc.ents:
            ents[ent.label_] = ents.get(ent.label_, 0) + 1
    return {"docs": docs, "tokens": tokens, "sentences": sentences, "ents": ents,
            "ents_total": sum(ents.values())}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cmd_convert(args) -> Dict[str, Any]:
    data = repo_path(args.data)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if data.resolve() == REPO or REPO in data.resolve().parents:
        log(f"WARNING: --data {data} is inside the repository; CoNLL-2003 may not "
            "be redistributed, keep it outside (../shared/data/conll2003)")
    summary: Dict[str, Any] = {"data": show(data), "n_sents": args.n_sents, "splits": {}}
    problems = []
    for split in SPLITS:
        src = data / f"{split}.iob"
        if not src.exists():
            raise SystemExit(f"missing {src}: point --data at the CoNLL-2003 folder")
        digest = sha256(src)
        if digest != SHA256[split]:
            log(f"WARNING: {src} has SHA-256 {digest[:12]}…, not the README's "
                f"{SHA256[split][:12]}…; the counts decide")
        with tempfile.TemporaryDirectory(prefix="conll03-") as tmp:
            copy = Path(tmp) / f"{split}.iob"
            grouped = write_grouped_copy(src, copy, args.n_sents)
            cmd = [sys.executable, "-m", "spacy", "convert", str(copy), str(work),
                   "-c", "ner", "-n", str(args.n_sents)]
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
                raise SystemExit(f"spacy convert failed for {split} (rc={proc.returncode})")
        out = work / f"{split}.spacy"
        counts = count_docbin(out)
        exp = EXPECTED[split]
        checks = {"tokens": (counts["tokens"], exp["tokens"]),
                  "sentences": (counts["sentences"], exp["sentences"]),
                  "articles": (grouped["articles"], exp["articles"]),
                  "docs": (counts["docs"], grouped["docs"])}
        checks.update({f"ents {l}": (counts["ents"].get(l, 0), n) for l, n in exp["ents"].items()})
        extra = set(counts["ents"]) - set(exp["ents"])
        if extra:
            checks["ents other labels"] = (sum(counts["ents"][l] for l in extra), 0)
        bad = {k: v for k, v in checks.items() if v[0] != v[1]}
        for k, (got, want) in bad.items():
            problems.append(f"{split}: {k} = {got:,}, expected {want:,}")
        summary["splits"][split] = {
            "source": show(src), "sha256": digest, "sha256_ok": digest == SHA256[split],
            "spacy": show(out), "articles": grouped["articles"], **counts,
            "expected_ents": exp["ents"], "expected_total": sum(exp["ents"].values()),
            "ok": not bad,
        }
        log(f"{split}: {grouped['articles']} articles -> {counts['docs']:,} docs, "
            f"{counts['tokens']:,} tokens, {counts['ents_total']:,} entities "
            + " ".join(f"{l}={counts['ents'].get(l, 0):,}" for l in LABELS)
            + ("  OK" if not bad else "  MISMATCH"))
    write_json(work / "counts.json", summary)
    if problems:
        raise SystemExit("converted corpus does not match the data README:\n  "
                         + "\n  ".join(problems))
    return summary


# --- train ---------------------------------------------------------------------


class BudgetExhausted(Exception):
    pass


def machine_facts() -> Dict[str, Any]:
    facts: Dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    from importlib import metadata

    for pkg in ("spacy", "thinc", "numpy", "spacy-rnn-ner"):
        try:
            facts[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            facts[pkg] = None
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        facts["git"] = rev + ("+dirty" if dirty else "")
    except OSError:
        facts["git"] = None
    return facts


def cmd_train(args) -> None:
    work = Path(args.workdir)
    for split in ("train", "dev"):
        if not (work / f"{split}.spacy").exists():
            raise SystemExit(f"{work / split}.spacy missing: run the convert step first")
    systems = systems_of(args)
    if any(s["dir"] == "spacy_ner" for s in systems):
        cfg = work / "spacy_ner.cfg"
        proc = subprocess.run([sys.executable, *SPACY_NER_CMD, str(cfg), "--force"],
                              cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit("spacy init config failed")
    models = work / "models"
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    parallel = args.parallel
    threads = 1 if parallel else args.threads
    run = {"command": args.command_line, "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "budget_minutes": args.budget_minutes, "mode": "parallel" if parallel else "sequential",
           "threads_per_system": threads, "limit": args.limit, "eval_limit": args.eval_limit,
           "keep_stops": args.keep_stops, "eval_frequency": args.eval_frequency, "test_curve": not args.no_test_curve,
           "n_sents": args.n_sents, "seed": args.seed, "vectors": args.vectors,
           "systems": systems, "machine": machine_facts()}
    write_json(work / "run.json", run)
    # A training process also spends time outside the budget (initialisation,
    # evaluations): the watchdog only catches a process that hangs.
    hard_limit = args.budget_minutes * 60 * 3 + 1800
    waves = [systems[i:i + len(cpus)] for i in range(0, len(systems), len(cpus))] if parallel \
        else [[s] for s in systems]
    for wave in waves:
        procs = []
        for i, system in enumerate(wave):
            out = models / system["dir"]
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), "_train_one",
                   "--system-dir", system["dir"], "--system-config", system["config"],
                   "--workdir", str(work), "--budget-minutes", str(args.budget_minutes),
                   "--seed", str(args.seed)]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
            if args.eval_limit:
                cmd += ["--eval-limit", str(args.eval_limit)]
            if args.eval_frequency:
                cmd += ["--eval-frequency", str(args.eval_frequency)]
            if args.keep_stops:
                cmd.append("--keep-stops")
            if args.no_test_curve:
                cmd.append("--no-test-curve")
            if args.vectors:
                cmd += ["--vectors", args.vectors]
            if parallel:
                cmd += ["--cpu", str(cpus[i % len(cpus)])]
            logf = (out / "train.log").open("w", encoding="utf8")
            log(f"train {system['name']} for {args.budget_minutes:g} min"
                + (f" on CPU {cpus[i % len(cpus)]}" if parallel else "")
                + f", {threads} thread(s); log: {show(out / 'train.log')}")
            procs.append((system, subprocess.Popen(cmd, cwd=REPO, env=thread_env(threads),
                                                   stdout=logf, stderr=subprocess.STDOUT), logf))
        start = time.monotonic()
        failed = []
        for system, proc, logf in procs:
            try:
                rc = proc.wait(timeout=max(1.0, hard_limit - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
                log(f"{system['name']}: killed after {hard_limit / 60:.0f} min (watchdog)")
            logf.close()
            out = models / system["dir"]
            if rc != 0 or not (out / "train.json").exists():
                tail = (out / "train.log").read_text(encoding="utf8", errors="replace")[-3000:]
                sys.stderr.write(tail)
                failed.append(system["name"])
                continue
            res = read_json(out / "train.json")
            log(f"{system['name']}: {res['train_minutes']:.1f} min, {res['steps']:,} steps, "
                f"{res['words_per_s']:,.0f} words/s, best dev ents_f {res['best_dev_f']:.4f} "
                f"({res['stop_reason']})")
        if failed:
            raise SystemExit(f"training failed: {', '.join(failed)}")


def weighted_score(scores: Dict[str, Any], weights: Dict[str, Optional[float]]) -> float:
    """The main score as spaCy's training loop computes it (loop.py)."""
    weights = {k: v for k, v in weights.items() if v is not None and k in scores}
    return float(sum((scores.get(k) or 0.0) * w for k, w in weights.items()))


def use_static_vectors(config, vectors: str) -> None:
    """Load `vectors` at initialisation and switch on every
    `include_static_vectors` setting in the config (spaCy's MultiHashEmbed and
    ours both have one)."""
    path = repo_path(vectors)
    if not (path / "vocab").exists():
        raise SystemExit(f"--vectors {vectors}: not a `spacy init vectors` output (no vocab/)")
    config["paths"]["vectors"] = str(path)
    config["initialize"]["vectors"] = str(path)
    found = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "include_static_vectors":
                    node[key] = True
                    found.append(where)
                else:
                    walk(value, f"{where}.{key}" if where else key)

    walk(config, "")
    if not found:
        raise SystemExit("--vectors: the config has no include_static_vectors setting")


def cmd_train_one(args) -> None:
    """One system, in its own process (BLAS threads are read at import time)."""
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    import spacy
    from spacy import util
    from spacy.training import Corpus
    from spacy.training import loop as spacy_loop
    from spacy.training.initialize import init_nlp

    work = Path(args.workdir)
    out = work / "models" / args.system_dir
    overrides: Dict[str, Any] = {
        "paths.train": show(work / "train.spacy"),
        "paths.dev": show(work / "dev.spacy"),
        "system.seed": args.seed,
        "corpora.train.limit": args.limit or 0,
        "corpora.dev.limit": args.eval_limit or 0,
    }
    if args.eval_frequency:
        overrides["training.eval_frequency"] = args.eval_frequency
    if not args.keep_stops:
        overrides.update({"training.max_steps": 0, "training.max_epochs": 0,
                          "training.patience": 0})
    config = util.load_config(args.system_config, overrides=overrides, interpolate=False)
    if args.vectors:
        use_static_vectors(config, args.vectors)
    t0 = time.perf_counter()
    nlp = init_nlp(config, use_gpu=-1)
    init_s = time.perf_counter() - t0
    weights = dict(nlp.config["training"]["score_weights"])
    test_corpus = Corpus(str(work / "test.spacy"), limit=args.eval_limit or 0)
    budget_s = args.budget_minutes * 60.0
    clock: Dict[str, Any] = {"start": None, "overhead": 0.0, "steps": 0, "words": 0,
                             "epoch": 0, "best": None}
    curve: List[Dict[str, Any]] = []

    def trained_s() -> float:
        if clock["start"] is None:
            return 0.0
        return time.perf_counter() - clock["start"] - clock["overhead"]

    def test_f(model) -> float:
        return float(model.evaluate(test_corpus(model))["ents_f"] or 0.0)

    def record(step: int, score: float, scores: Dict[str, Any], model) -> None:
        entry = {"step": step, "minutes": trained_s() / 60,
                 "wall_minutes": (time.perf_counter() - clock["start"]) / 60,
                 "words": clock["words"], "dev_score": score,
                 "dev_f": float(scores.get("ents_f") or 0.0)}
        entry["best"] = clock["best"] is None or score >= clock["best"]
        if entry["best"]:
            clock["best"] = score
            if not args.no_test_curve:
                entry["test_f"] = test_f(model)
        curve.append(entry)

    original = spacy_loop.train_while_improving

    def budgeted(nlp, optimizer, train_data, evaluate, *, before_update=None, **kwargs):
        # Wraps spaCy's loop so that nothing is written into the pipeline's
        # config (a before_update in [training] would be saved with the model).
        def timed_evaluate():
            t = time.perf_counter()
            score, scores = evaluate()
            record(clock["steps"], score, scores, nlp)
            clock["overhead"] += time.perf_counter() - t
            return score, scores

        def check_budget(nlp, info):
            if clock["start"] is None:
                clock["start"] = time.perf_counter()
            elif trained_s() >= budget_s:
                raise BudgetExhausted(f"{args.budget_minutes:g} min spent at step {info['step']}")
            clock["steps"] = info["step"] + 1  # completed updates once this one runs
            if before_update is not None:
                before_update(nlp, info)

        for batch, info, is_best in original(nlp, optimizer, train_data, timed_evaluate,
                                             before_update=check_budget, **kwargs):
            clock["words"], clock["epoch"] = info["words"], info["epoch"]
            t = time.perf_counter()
            yield batch, info, is_best  # spaCy saves checkpoints meanwhile
            clock["overhead"] += time.perf_counter() - t

    spacy_loop.train_while_improving = budgeted
    stop_reason = "config's stopping criteria"
    try:
        spacy_loop.train(nlp, out, use_gpu=-1, stdout=sys.stdout, stderr=sys.stderr)
    except BudgetExhausted as e:
        stop_reason = "budget"
        print(f"\nBudget spent ({e}); scoring model-last.", flush=True)
    finally:
        spacy_loop.train_while_improving = original
    train_s = trained_s()
    # The steps after the last evaluation: score model-last (saved by spaCy,
    # with averaged parameters when the optimizer keeps them).
    t = time.perf_counter()
    last = spacy.load(out / "model-last")
    scores = last.evaluate(Corpus(str(work / "dev.spacy"), limit=args.eval_limit or 0)(last))
    score = weighted_score(scores, weights)
    # check_budget raises before counting the step it refuses, so this is the
    # number of completed updates either way.
    steps = clock["steps"]
    was_best = clock["best"]
    record(steps, score, scores, last)
    curve[-1]["final"] = True
    curve[-1]["minutes"] = train_s / 60
    if was_best is None or score >= was_best:
        shutil.rmtree(out / "model-best", ignore_errors=True)
        shutil.copytree(out / "model-last", out / "model-best")
        best_from = "model-last (final)"
    else:
        best_from = "last best checkpoint"
    final_eval_s = time.perf_counter() - t
    best = max((c for c in curve if c["best"]), key=lambda c: (c["dev_score"], c["step"]))
    n_train_tokens = sum(len(eg) for eg in Corpus(str(work / "train.spacy"),
                                                  limit=args.limit or 0)(nlp))
    write_json(out / "train.json", {
        "system_dir": args.system_dir, "config": show(Path(args.system_config)),
        "budget_minutes": args.budget_minutes, "stop_reason": stop_reason,
        "train_minutes": train_s / 60,
        "wall_minutes": (time.perf_counter() - clock["start"]) / 60 if clock["start"] else 0.0,
        "overhead_minutes": clock["overhead"] / 60, "init_seconds": init_s,
        "final_eval_seconds": final_eval_s,
        "steps": steps, "words": clock["words"], "epochs": clock["words"] / max(1, n_train_tokens),
        "words_per_s": clock["words"] / train_s if train_s else 0.0,
        "best_dev_f": best["dev_f"], "best_step": best["step"], "model_best_from": best_from,
        "cpu": args.cpu, "threads": os.environ.get("OMP_NUM_THREADS"),
        "overrides": overrides, "curve": curve,
    })


# --- evaluate ------------------------------------------------------------------


def cmd_evaluate(args) -> None:
    work = Path(args.workdir)
    for system in systems_of(args, trained=True):
        out = work / "models" / system["dir"]
        if not (out / "model-best").exists():
            raise SystemExit(f"{show(out / 'model-best')} missing: run the train step first")
        cmd = [sys.executable, str(Path(__file__).resolve()), "_eval_one",
               "--system-dir", system["dir"], "--workdir", str(work),
               "--pipe-repeats", str(args.pipe_repeats)]
        if args.eval_limit:
            cmd += ["--eval-limit", str(args.eval_limit)]
        log(f"evaluate {system['name']} ({args.threads} thread(s))")
        proc = subprocess.run(cmd, cwd=REPO, env=thread_env(args.threads),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"evaluation of {system['name']} failed")
        res = read_json(out / "eval.json")
        log(f"{system['name']}: dev ents_f {res['dev']['ents_f']:.4f}, test ents_f "
            f"{res['test']['ents_f']:.4f}, {res['eval_words_per_s']:,.0f} words/s, "
            f"{res['size_mb']:.1f} MB")


def ents_scores(scores: Dict[str, Any]) -> Dict[str, Any]:
    per_type = scores.get("ents_per_type") or {}
    return {"ents_p": scores.get("ents_p") or 0.0, "ents_r": scores.get("ents_r") or 0.0,
            "ents_f": scores.get("ents_f") or 0.0,
            "per_type": {k: {m: v.get(m, 0.0) for m in ("p", "r", "f")}
                         for k, v in sorted(per_type.items())},
            "scorer_words_per_s": scores.get("speed")}


def cmd_eval_one(args) -> None:
    import spacy
    from spacy.training import Corpus

    work = Path(args.workdir)
    out = work / "models" / args.system_dir
    model = out / "model-best"
    nlp = spacy.load(model)
    limit = args.eval_limit or 0
    result: Dict[str, Any] = {}
    for split in ("dev", "test"):
        corpus = Corpus(str(work / f"{split}.spacy"), limit=limit)
        result[split] = ents_scores(nlp.evaluate(corpus(nlp)))
    # Speed: the test docs (gold tokens, no annotation; tokenizer not timed),
    # fresh Doc objects for every pass, the pipeline's own batch size.
    corpus = Corpus(str(work / "test.spacy"), limit=limit)
    fresh = lambda: [eg.predicted for eg in corpus(nlp)]  # noqa: E731
    docs = fresh()
    n_words = sum(len(d) for d in docs)
    list(nlp.pipe(docs[:50]))  # warm-up
    times = []
    for _ in range(args.pipe_repeats):
        docs = fresh()
        t = time.perf_counter()
        for _doc in nlp.pipe(docs):
            pass
        times.append(time.perf_counter() - t)
    size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
    result.update({
        "eval_words": n_words, "eval_docs": len(docs), "eval_seconds": statistics.median(times),
        "eval_words_per_s": n_words / statistics.median(times), "pipe_repeats": args.pipe_repeats,
        "batch_size": nlp.batch_size, "size_mb": size / 1e6, "pipeline": nlp.pipe_names,
        "threads": os.environ.get("OMP_NUM_THREADS"),
    })
    write_json(out / "eval.json", result)


# --- report --------------------------------------------------------------------


def fmt(x: Optional[float], digits: int = 2, scale: float = 100.0) -> str:
    return "n/a" if x is None else f"{x * scale:.{digits}f}"


def cmd_report(args) -> None:
    work = Path(args.workdir)
    results = repo_path(args.results)
    run = read_json(work / "run.json") if (work / "run.json").exists() else {}
    counts = read_json(work / "counts.json") if (work / "counts.json").exists() else {}
    systems = []
    for system in systems_of(args, trained=True):
        out = work / "models" / system["dir"]
        missing = [f for f in ("train.json", "eval.json") if not (out / f).exists()]
        if missing:
            raise SystemExit(f"{show(out)}: {', '.join(missing)} missing; run train and evaluate")
        systems.append({**system, "train": read_json(out / "train.json"),
                        "eval": read_json(out / "eval.json")})
    budget = run.get("budget_minutes", args.budget_minutes)
    smoke = bool(run.get("limit") or run.get("eval_limit"))
    data: Dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "train_run": run, "report_command": args.command_line, "corpus": counts,
        "smoke": smoke, "systems": [],
    }
    for s in systems:
        data["systems"].append({
            "name": s["name"], "dir": s["dir"], "config": s["source"],
            "dev": s["eval"]["dev"], "test": s["eval"]["test"],
            "train_minutes": s["train"]["train_minutes"], "steps": s["train"]["steps"],
            "epochs": s["train"]["epochs"], "train_words_per_s": s["train"]["words_per_s"],
            "eval_words_per_s": s["eval"]["eval_words_per_s"], "size_mb": s["eval"]["size_mb"],
            "train": s["train"], "eval": s["eval"],
        })
    results.mkdir(parents=True, exist_ok=True)
    stem = "conll03-vectors" if run.get("vectors") else "conll03"
    png = results / f"{stem}.png"
    plot_note = plot(data, png)
    data["plot"] = show(png) if plot_note is None else None
    write_json(results / f"{stem}.json", data)
    md = render_md(data, plot_note)
    (results / f"{stem}.md").write_text(md, encoding="utf8")
    print(md)
    log(f"wrote {show(results / f'{stem}.md')}, {show(results / f'{stem}.json')}"
        + ("" if plot_note else f", {show(png)}"))


def render_md(data: Dict[str, Any], plot_note: Optional[str]) -> str:
    run, m = data["train_run"], data["train_run"].get("machine", {})
    vectors = run.get("vectors")
    title = "# CoNLL-2003 English: rnn_ner vs spaCy's ner, same training budget"
    lines = [title + (", with static vectors" if vectors else ", no pretrained vectors"), ""]
    if vectors:
        lines += [f"Both systems: static vectors from `{vectors}` "
                  "(`include_static_vectors = true`, loaded at initialisation).", ""]
    if data["smoke"]:
        lines += ["> **Smoke run** (`--limit`/`--eval-limit` subsample the data): these "
                  "numbers only show that the harness works; they are not results.", ""]
    lines += [
        f"Trained {run.get('date', '?')}; report written {data['date']}. "
        f"Budget: **{run.get('budget_minutes', '?')} min of training per system** "
        f"({run.get('mode', '?')}, {run.get('threads_per_system', '?')} BLAS thread(s) each"
        + (", one CPU core each" if run.get("mode") == "parallel" else "") + "). ",
        "",
        "```bash",
        run.get("command", "?"),
        "```",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cpus_allowed', '?')} cores allowed, "
        f"{m.get('mem_gib', '?')} GiB; {m.get('platform', '?')}; Python {m.get('python', '?')}, "
        f"spaCy {m.get('spacy', '?')}, Thinc {m.get('thinc', '?')}, numpy {m.get('numpy', '?')}, "
        f"spacy-rnn-ner {m.get('spacy-rnn-ner', '?')} (git {m.get('git', '?')}); "
        f"load average at start {', '.join(f'{x:.2f}' for x in m.get('loadavg') or [])}.",
        "",
    ]
    corpus = data["corpus"]
    if corpus:
        sp = corpus["splits"]
        lines += [
            f"Data: `{corpus['data']}` (read by path, never copied into the project), "
            f"converted with `spacy convert -c ner`, {corpus['n_sents'] or 'whole-article'} "
            f"sentences per doc; entity counts checked against the data README: "
            + ", ".join(f"{k} {v['ents_total']:,} {'✓' if v['ok'] else '✗'}" for k, v in sp.items())
            + ".",
            "",
        ]
    head = ("| System | dev P | dev R | dev F | test P | test R | test F | "
            + " | ".join(f"test {l} F" for l in LABELS)
            + " | train min | steps | epochs | train words/s | eval words/s | size MB |")
    lines += [head, "|" + "|".join([":--"] + ["--:"] * (head.count("|") - 2)) + "|"]
    for s in data["systems"]:
        d, t = s["dev"], s["test"]
        lines.append(
            f"| {s['name']} | {fmt(d['ents_p'])} | {fmt(d['ents_r'])} | **{fmt(d['ents_f'])}** | "
            f"{fmt(t['ents_p'])} | {fmt(t['ents_r'])} | **{fmt(t['ents_f'])}** | "
            + " | ".join(fmt(t["per_type"].get(l, {}).get("f")) for l in LABELS)
            + f" | {s['train_minutes']:.1f} | {s['steps']:,} | {s['epochs']:.1f} | "
            f"{s['train_words_per_s']:,.0f} | {s['eval_words_per_s']:,.0f} | {s['size_mb']:.1f} |")
    lines += ["", "Configs: " + "; ".join(f"{s['name']}: `{s['config']}`" for s in data["systems"])
              + ".", ""]
    lines += ["## Test F of model-best over training time", ""]
    lines.append(f"![test F1 vs training minutes]({Path(data['plot']).name})" if plot_note is None
                 else f"(no plot: {plot_note})")
    lines.append("")
    budget = float(run.get("budget_minutes") or 0)
    marks = [f * budget for f in CURVE_FRACTIONS]
    lines += ["Dev / test F of model-best after a given share of the budget "
              "(test scored outside the budget each time the dev score improved):", "",
              "| System | " + " | ".join(f"{m:.3g} min" for m in marks) + " | stopped by | model-best at step |",
              "|:--|" + "--:|" * (len(marks) + 2)]
    for s in data["systems"]:
        cells = []
        for mark in marks:
            # the final evaluation sits one step past the budget: the last column has it
            pts = [c for c in s["train"]["curve"]
                   if c["best"] and (c["minutes"] <= mark or mark == marks[-1])]
            if not pts:
                cells.append("–")
                continue
            c = pts[-1]
            cells.append(fmt(c["dev_f"], 1)
                         + (f" / {fmt(c['test_f'], 1)}" if "test_f" in c else ""))
        lines.append(f"| {s['name']} | " + " | ".join(cells)
                     + f" | {s['train']['stop_reason']} | {s['train']['best_step']:,} |")
    lines += [
        "",
        "## What the numbers mean",
        "",
        "- **P/R/F**: spaCy's `Scorer` (`nlp.evaluate`), exact-match entity spans, "
        "micro-averaged, in %, for model-best (the checkpoint with the best dev score).",
        "- **train min**: time charged to the budget: batching and updates only. "
        "Initialisation, dev evaluations and checkpoint saving are not charged (the "
        "configs evaluate at different frequencies). Every config's `max_steps`, "
        "`max_epochs` and `patience` are switched off"
        + (" (here they were kept: `--keep-stops`)" if run.get("keep_stops") else "")
        + ", so the budget ends training; the steps after the last evaluation are "
        "scored too (model-last becomes model-best if its dev score is at least as good).",
        "- **steps / epochs**: optimizer updates; training words ÷ training-set tokens.",
        "- **train words/s**: words in the updates ÷ train min.",
        "- **eval words/s**: test tokens ÷ median seconds of `list(nlp.pipe(docs))` over "
        "pre-tokenised test docs (tokenizer not timed), one process, "
        f"{data['systems'][0]['eval']['threads'] if data['systems'] else '?'} BLAS thread(s), "
        "the pipeline's own batch size.",
        "- **size MB**: bytes of `model-best/` on disk ÷ 10⁶.",
        "- The curve (plot, left): test F of model-best, scored each time the dev score "
        "improved (outside the budget), at the training minutes when it was reached; "
        "right: dev F at every evaluation of the training loop.",
        "",
    ]
    return "\n".join(lines)


def plot(data: Dict[str, Any], png: Path) -> Optional[str]:
    """Write the plot; return why not, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        msg = "matplotlib is not installed (pip install matplotlib)"
        log(f"skipping the plot: {msg}")
        return msg
    fig, (ax_test, ax_dev) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for s in data["systems"]:
        curve = s["train"]["curve"]
        best = [c for c in curve if c["best"] and "test_f" in c]
        if best:
            xs = [c["minutes"] for c in best] + [s["train_minutes"]]
            ys = [100 * c["test_f"] for c in best] + [100 * best[-1]["test_f"]]
            (line,) = ax_test.step(xs, ys, where="post", label=s["name"])
            color = line.get_color()
        else:
            color = None
        pt = ax_test.plot([s["train_minutes"]], [100 * s["test"]["ents_f"]], "o", color=color,
                          label=None if best else s["name"])
        color = pt[0].get_color()
        ax_dev.plot([c["minutes"] for c in curve], [100 * c["dev_f"] for c in curve],
                    ".-", color=color, label=s["name"], linewidth=1)
    budget = data["train_run"].get("budget_minutes")
    title = f"budget {budget} min" + (" — SMOKE RUN" if data["smoke"] else "")
    ax_test.set(title=f"test F1 of model-best ({title})", xlabel="training minutes",
                ylabel="ents F1 (%)")
    ax_dev.set(title="dev F1 at each evaluation", xlabel="training minutes", ylabel="ents F1 (%)")
    for ax in (ax_test, ax_dev):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return None


# --- CLI -----------------------------------------------------------------------


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="all",
                   choices=["all", "convert", "train", "evaluate", "report", "_train_one", "_eval_one"],
                   help="step to run (default: all four)")
    p.add_argument("--data", default="../shared/data/conll2003",
                   help="folder with train.iob, dev.iob, test.iob (relative paths: to the repo root)")
    p.add_argument("--budget-minutes", type=float, default=60.0,
                   help="training minutes per system (default 60)")
    p.add_argument("--configs", nargs="+", default=None,
                   help="rnn_ner configs (default configs/lstm.cfg); evaluate/report "
                   "default to the systems of the last train step")
    p.add_argument("--systems", default=None,
                   help="comma-separated: rnn_ner (each --configs), spacy_ner (default both)")
    p.add_argument("--parallel", action="store_true",
                   help="train the systems at the same time, one per CPU core, 1 BLAS thread each")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads per process when not --parallel, and for evaluation (default 1)")
    p.add_argument("--n-sents", type=int, default=10,
                   help="sentences per doc, never across articles; 0: whole articles (default 10)")
    p.add_argument("--limit", type=int, default=0, help="train on the first N docs only (smoke tests)")
    p.add_argument("--eval-limit", type=int, default=0,
                   help="evaluate on the first N dev/test docs only (smoke tests)")
    p.add_argument("--keep-stops", action="store_true",
                   help="keep the configs' max_steps/max_epochs/patience (default: budget only)")
    p.add_argument("--eval-frequency", type=int, default=0,
                   help="steps between dev evaluations for every system (default: each config's own)")
    p.add_argument("--no-test-curve", action="store_true",
                   help="don't score test each time dev improves (the plot then has end points only)")
    p.add_argument("--vectors", default=None,
                   help="static vectors (a `spacy init vectors` output, e.g. from "
                   "benchmarks/glove_vectors.py) for every system: sets [initialize] vectors "
                   "and every include_static_vectors in the configs to true; results go to "
                   "conll03-vectors.{md,json,png}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pipe-repeats", type=int, default=3, help="timed nlp.pipe passes (median)")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR,
                   help=f"converted corpora, configs and models (git-ignored; default {DEFAULT_WORKDIR})")
    p.add_argument("--results", default=DEFAULT_RESULTS,
                   help=f"where conll03.{{md,json,png}} go (default {DEFAULT_RESULTS})")
    # internal, for the per-system subprocesses
    p.add_argument("--system-dir", help=argparse.SUPPRESS)
    p.add_argument("--system-config", help=argparse.SUPPRESS)
    p.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workdir = str(repo_path(args.workdir))
    if args.budget_minutes <= 0:
        p.error("--budget-minutes must be positive")
    args.command_line = "python benchmarks/conll03.py " + " ".join(shlex.quote(a) for a in argv)
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    steps = {"convert": cmd_convert, "train": cmd_train, "evaluate": cmd_evaluate,
             "report": cmd_report, "_train_one": cmd_train_one, "_eval_one": cmd_eval_one}
    if args.command == "all":
        for name in ("convert", "train", "evaluate", "report"):
            steps[name](args)
    else:
        steps[args.command](args)


if __name__ == "__main__":
    main()
