"""Accuracy on CoNLL-2003 English: `rnn_ner` side by side with spaCy's own `ner`,
each trained under the same wall-clock budget, once per seed.

    python benchmarks/conll03.py --budget-minutes 60                 # all steps
    python benchmarks/conll03.py --budget-minutes 60 --parallel --seeds 0 1 2 \\
        --configs configs/lstm.cfg configs/conll03.cfg
    python benchmarks/conll03.py convert|train|evaluate|report [options]

Steps (`all`, the default, runs them in this order):

* `convert`: `spacy convert` train/dev/test (read by path from `--data`, never
  copied into the project) into `benchmarks/cache/conll03/{train,dev,test}.spacy`,
  then check tokens, sentences and entities per type against the data README.
* `train`: each `--configs` file (component `rnn_ner`) and spaCy's `ner`
  (`spacy init config -l en -p ner -o efficiency`, no vectors) for
  `--budget-minutes` of training each, once per `--seeds` value (default 0 1 2),
  in a fresh process per system and seed, into `models/SYSTEM/seedN/`.
* `evaluate`: model-best of each training on dev and test with spaCy's scorer,
  timed `nlp.pipe` over the test docs, size on disk.
* `report`: `benchmarks/results/conll03.{md,json,png}`: per system the median
  and the min-max over seeds of every figure, and each seed's figures.

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
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402
from _common import REPO, read_json, repo_path, show, write_json  # noqa: E402

DEFAULT_WORKDIR = "benchmarks/cache/conll03"
DEFAULT_RESULTS = "benchmarks/results"
SPLITS = ("train", "dev", "test")
LABELS = ("LOC", "MISC", "ORG", "PER")
CURVE_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
DEFAULT_SEEDS = (0, 1, 2)
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


log = _common.logger("conll03", stdout=True)


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


Job = Tuple[Dict[str, str], int, str]  # system, seed, its folder under models/


def jobs_of(systems: List[Dict[str, str]], seeds: Sequence[int]) -> List[Job]:
    """One training per system and seed, into models/SYSTEM/seedN/; the
    systems of a seed next to each other, so that a wave trains them together."""
    return [(s, seed, f"{s['dir']}/seed{seed}") for seed in seeds for s in systems]


def trained_jobs(args) -> List[Job]:
    """The trainings of the last train step, for evaluate and report: the
    systems and seeds of run.json unless --systems/--configs or --seeds are
    given. A run.json without seeds (written before seeds existed) had one
    model per system in models/SYSTEM/."""
    run_json = Path(args.workdir) / "run.json"
    run = read_json(run_json) if run_json.exists() else {}
    systems = systems_of(args, trained=True)
    if args.seeds is None and run and "seeds" not in run:
        return [(s, int(run.get("seed") or 0), s["dir"]) for s in systems]
    return jobs_of(systems, args.seeds if args.seeds is not None
                   else run.get("seeds", list(DEFAULT_SEEDS)))


def thread_env(threads: int) -> Dict[str, str]:
    return _common.thread_env(threads, PYTHONUNBUFFERED="1")


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


def cmd_train(args) -> None:
    work = Path(args.workdir)
    for split in ("train", "dev"):
        if not (work / f"{split}.spacy").exists():
            raise SystemExit(f"{work / split}.spacy missing: run the convert step first")
    systems = systems_of(args)
    seeds = list(args.seeds if args.seeds is not None else DEFAULT_SEEDS)
    jobs = jobs_of(systems, seeds)
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
           "n_sents": args.n_sents, "seeds": seeds, "vectors": args.vectors,
           "systems": systems, "machine": _common.machine_facts()}
    write_json(work / "run.json", run)
    # A training process also spends time outside the budget (initialisation,
    # evaluations): the watchdog only catches a process that hangs.
    hard_limit = args.budget_minutes * 60 * 3 + 1800
    # Waves of one training per core, in jobs_of's order: the systems of a
    # seed side by side, so that they share the machine's load.
    waves = [jobs[i:i + len(cpus)] for i in range(0, len(jobs), len(cpus))] if parallel \
        else [[job] for job in jobs]
    for n_wave, wave in enumerate(waves, 1):
        procs = []
        for i, (system, seed, folder) in enumerate(wave):
            out = models / folder
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), "_train_one",
                   "--system-dir", folder, "--system-config", system["config"],
                   "--workdir", str(work), "--budget-minutes", str(args.budget_minutes),
                   "--seed", str(seed)]
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
            cmd += ["--sents", args.sents]
            if parallel:
                cmd += ["--cpu", str(cpus[i % len(cpus)])]
            logf = (out / "train.log").open("w", encoding="utf8")
            log(f"[{n_wave}/{len(waves)}] train {system['name']} seed {seed} for "
                f"{args.budget_minutes:g} min"
                + (f" on CPU {cpus[i % len(cpus)]}" if parallel else "")
                + f", {threads} thread(s); log: {show(out / 'train.log')}")
            proc = subprocess.Popen(cmd, cwd=REPO, env=thread_env(threads),
                                    stdout=logf, stderr=subprocess.STDOUT)
            procs.append((system, seed, folder, proc, logf))
        start = time.monotonic()
        failed = []
        for system, seed, folder, proc, logf in procs:
            try:
                rc = proc.wait(timeout=max(1.0, hard_limit - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
                log(f"{system['name']} seed {seed}: killed after {hard_limit / 60:.0f} min "
                    "(watchdog)")
            logf.close()
            out = models / folder
            if rc != 0 or not (out / "train.json").exists():
                tail = (out / "train.log").read_text(encoding="utf8", errors="replace")[-3000:]
                sys.stderr.write(tail)
                failed.append(f"{system['name']} seed {seed}")
                continue
            res = read_json(out / "train.json")
            log(f"{system['name']} seed {seed}: {res['train_minutes']:.1f} min, {res['steps']:,} steps, "
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
        "system.seed": args.seeds[0],
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
    test_examples = scoring_examples(nlp, work / "test.spacy", args.eval_limit or 0, args.sents)
    budget_s = args.budget_minutes * 60.0
    clock: Dict[str, Any] = {"start": None, "overhead": 0.0, "steps": 0, "words": 0,
                             "epoch": 0, "best": None}
    curve: List[Dict[str, Any]] = []

    def trained_s() -> float:
        if clock["start"] is None:
            return 0.0
        return time.perf_counter() - clock["start"] - clock["overhead"]

    def test_f(model) -> float:
        return float(model.evaluate(test_examples)["ents_f"] or 0.0)

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
        "system_dir": args.system_dir, "seed": args.seeds[0],
        "config": show(Path(args.system_config)),
        "budget_minutes": args.budget_minutes, "stop_reason": stop_reason,
        "train_minutes": train_s / 60,
        "wall_minutes": (time.perf_counter() - clock["start"]) / 60 if clock["start"] else 0.0,
        "overhead_minutes": clock["overhead"] / 60, "init_seconds": init_s,
        "final_eval_seconds": final_eval_s,
        "steps": steps, "words": clock["words"], "epochs": clock["words"] / max(1, n_train_tokens),
        "words_per_s": clock["words"] / train_s if train_s else 0.0,
        "best_dev_f": best["dev_f"], "best_step": best["step"], "model_best_from": best_from,
        "cpu": args.cpu, "threads": os.environ.get("OMP_NUM_THREADS"),
        "overrides": overrides, "curve": curve, "sents": args.sents,
    })


# --- evaluate ------------------------------------------------------------------


def cmd_evaluate(args) -> None:
    work = Path(args.workdir)
    for system, seed, folder in trained_jobs(args):
        out = work / "models" / folder
        if not (out / "model-best").exists():
            raise SystemExit(f"{show(out / 'model-best')} missing: run the train step first")
        cmd = [sys.executable, str(Path(__file__).resolve()), "_eval_one",
               "--system-dir", folder, "--workdir", str(work),
               "--pipe-repeats", str(args.pipe_repeats), "--sents", args.sents]
        if args.eval_limit:
            cmd += ["--eval-limit", str(args.eval_limit)]
        log(f"evaluate {system['name']} seed {seed} ({args.threads} thread(s))")
        proc = subprocess.run(cmd, cwd=REPO, env=thread_env(args.threads),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"evaluation of {system['name']} seed {seed} failed")
        res = read_json(out / "eval.json")
        log(f"{system['name']} seed {seed}: dev ents_f {res['dev']['ents_f']:.4f}, test ents_f "
            f"{res['test']['ents_f']:.4f}, {res['eval_words_per_s']:,.0f} words/s, "
            f"{res['size_mb']:.1f} MB")


def ents_scores(scores: Dict[str, Any]) -> Dict[str, Any]:
    per_type = scores.get("ents_per_type") or {}
    return {"ents_p": scores.get("ents_p") or 0.0, "ents_r": scores.get("ents_r") or 0.0,
            "ents_f": scores.get("ents_f") or 0.0,
            "per_type": {k: {m: v.get(m, 0.0) for m in ("p", "r", "f")}
                         for k, v in sorted(per_type.items())},
            "scorer_words_per_s": scores.get("speed")}


def scoring_examples(nlp, path: Path, limit: int, sents: str) -> list:
    """The Examples that dev/test are scored on. With `sents` "none", spaCy's
    own `Corpus` (the reference's tokens, nothing else). With "gold", the
    input docs also get the reference's sentence starts, as in CoNLL's
    sentence-level evaluation: a system that keeps entities inside sentences
    (spaCy's `ner`, `rnn_ner`) then can't join two entities that the data
    splits at a sentence break (e.g. "Damien | Flemming", a quirk of the
    original files)."""
    from spacy.tokens import Doc
    from spacy.training import Corpus, Example

    examples = list(Corpus(str(path), limit=limit)(nlp))
    if sents == "none":
        return examples
    if sents != "gold":
        raise ValueError(f"sents must be 'gold' or 'none', got {sents!r}")
    out = []
    for eg in examples:
        ref = eg.reference
        doc = Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref],
                  sent_starts=[bool(t.is_sent_start) for t in ref])
        out.append(Example(doc, ref))
    return out


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
        examples = scoring_examples(nlp, work / f"{split}.spacy", limit, args.sents)
        result[split] = ents_scores(nlp.evaluate(examples))
    result["sents"] = args.sents
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


def spread(values: Sequence[float]) -> Dict[str, float]:
    """Median, min and max of one figure over seeds. An even count has the
    mean of the two middle values as its median (statistics.median)."""
    if not values:
        raise ValueError("no values: at least one seed is needed")
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def run_metrics(train: Dict[str, Any], ev: Dict[str, Any]) -> Dict[str, float]:
    """The figures of one training (one system, one seed), by flat name:
    dev_f, test_p, test_ORG_r, steps, ..."""
    m: Dict[str, float] = {}
    for split in ("dev", "test"):
        scores = ev[split]
        for x in ("p", "r", "f"):
            m[f"{split}_{x}"] = scores[f"ents_{x}"]
        for label, prf in scores["per_type"].items():
            for x in ("p", "r", "f"):
                m[f"{split}_{label}_{x}"] = prf[x]
    m.update({"train_minutes": train["train_minutes"], "steps": train["steps"],
              "epochs": train["epochs"], "train_words_per_s": train["words_per_s"],
              "best_step": train["best_step"], "eval_words_per_s": ev["eval_words_per_s"],
              "size_mb": ev["size_mb"]})
    return m


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    """spread() of every figure over the runs (seeds) of one system. A figure
    missing from a run (a type it never predicted) counts as 0 there."""
    metrics = [run_metrics(r["train"], r["eval"]) for r in runs]
    names = sorted({k for m in metrics for k in m})
    return {k: spread([m.get(k, 0.0) for m in metrics]) for k in names}


def report_data(run: Dict[str, Any], counts: Dict[str, Any],
                trainings: List[Tuple[Dict[str, str], int, Dict[str, Any], Dict[str, Any]]],
                command: str) -> Dict[str, Any]:
    """The report's JSON: per system, each seed's train.json and eval.json as
    written by the training and evaluation processes, and the median / min / max
    of each figure over seeds. Everything the markdown and the plot show."""
    systems: Dict[str, Dict[str, Any]] = {}
    for system, seed, train, ev in trainings:
        entry = systems.setdefault(system["dir"], {"name": system["name"], "dir": system["dir"],
                                                   "config": system["source"], "runs": []})
        entry["runs"].append({"seed": seed, "train": train, "eval": ev})
    for entry in systems.values():
        entry["runs"].sort(key=lambda r: r["seed"])
        entry["seeds"] = [r["seed"] for r in entry["runs"]]
        entry["summary"] = summarize(entry["runs"])
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "train_run": run, "report_command": command, "corpus": counts,
        "smoke": bool(run.get("limit") or run.get("eval_limit")),
        "systems": list(systems.values()),
    }


def cmd_report(args) -> None:
    results = repo_path(args.results)
    if args.from_json:
        data = read_json(repo_path(args.from_json))
        if not data.get("systems") or "runs" not in data["systems"][0]:
            raise SystemExit(f"{args.from_json}: no per-seed runs (written by an older "
                             "conll03.py?): re-run the report step on its workdir")
    else:
        work = Path(args.workdir)
        run = read_json(work / "run.json") if (work / "run.json").exists() else {}
        counts = read_json(work / "counts.json") if (work / "counts.json").exists() else {}
        trainings = []
        for system, seed, folder in trained_jobs(args):
            out = work / "models" / folder
            missing = [f for f in ("train.json", "eval.json") if not (out / f).exists()]
            if missing:
                raise SystemExit(f"{show(out)}: {', '.join(missing)} missing; "
                                 "run train and evaluate")
            trainings.append((system, seed, read_json(out / "train.json"),
                              read_json(out / "eval.json")))
        data = report_data(run, counts, trainings, args.command_line)
    results.mkdir(parents=True, exist_ok=True)
    stem = "conll03-vectors" if data["train_run"].get("vectors") else "conll03"
    png = results / f"{stem}.png"
    plot_note = plot(data, png)
    data["plot"] = show(png) if plot_note is None else None
    write_json(results / f"{stem}.json", data)
    md = render_md(data, plot_note)
    (results / f"{stem}.md").write_text(md, encoding="utf8")
    print(md)
    log(f"wrote {show(results / f'{stem}.md')}, {show(results / f'{stem}.json')}"
        + ("" if plot_note else f", {show(png)}"))


def fmt(x: Optional[float], digits: int = 2, scale: float = 100.0) -> str:
    return "n/a" if x is None else f"{x * scale:.{digits}f}"


def median_cell(s: Dict[str, float], digits: int = 2, scale: float = 100.0) -> str:
    return fmt(s["median"], digits, scale)


def range_cell(s: Dict[str, float], digits: int = 2, scale: float = 100.0) -> str:
    return f"{fmt(s['min'], digits, scale)}–{fmt(s['max'], digits, scale)}"


def headline_cell(s: Dict[str, float]) -> str:
    """The median in bold, then (min–max) when there is more than one seed."""
    return f"**{median_cell(s)}**" + (f" ({range_cell(s)})" if s["n"] > 1 else "")


def table(head: List[str], rows: List[List[str]]) -> List[str]:
    return (["| " + " | ".join(head) + " |", "|:--|" + "--:|" * (len(head) - 1)]
            + ["| " + " | ".join(r) + " |" for r in rows])


def best_at(curve: List[Dict[str, Any]], minutes: float, final: bool) -> Optional[Dict[str, Any]]:
    """The model-best evaluation reached by `minutes` of training (the final
    one, scored one step past the budget, only with `final`)."""
    pts = [c for c in curve if c["best"] and (c["minutes"] <= minutes or final)]
    return pts[-1] if pts else None


def render_md(data: Dict[str, Any], plot_note: Optional[str]) -> str:
    run, m = data["train_run"], data["train_run"].get("machine", {})
    v = m.get("versions") or m  # run.json of older versions: versions at the top level
    vectors = run.get("vectors")
    systems = data["systems"]
    seeds = sorted({seed for s in systems for seed in s["seeds"]})
    n_seeds = min((len(s["seeds"]) for s in systems), default=0)
    title = "# CoNLL-2003 English: rnn_ner vs spaCy's ner, same training budget"
    lines = [title + (", with static vectors" if vectors else ", no pretrained vectors"), ""]
    if vectors:
        lines += [f"Both systems: static vectors from `{vectors}` "
                  "(`include_static_vectors = true`, loaded at initialisation).", ""]
    if data["smoke"]:
        lines += ["> **Smoke run** (`--limit`/`--eval-limit` subsample the data): these "
                  "numbers only show that the harness works; they are not results.", ""]
    if n_seeds < 3:
        lines += [f"> **{n_seeds} seed(s) only**: a median needs at least 3 seeds to "
                  "support an accuracy claim.", ""]
    lines += [
        f"Trained {run.get('date', '?')}; report written {data['date']}. "
        f"Budget: **{run.get('budget_minutes', '?')} min of training per system and seed** "
        f"({run.get('mode', '?')}, {run.get('threads_per_system', '?')} BLAS thread(s) each"
        + (", one CPU core each" if run.get("mode") == "parallel" else "") + "); "
        f"seeds {', '.join(map(str, seeds))}.",
        "",
        "```bash",
        run.get("command", "?"),
        "```",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cpus_allowed', '?')} cores allowed, "
        f"{m.get('mem_gib', '?')} GiB; {m.get('platform', '?')}; Python {m.get('python', '?')}, "
        f"spaCy {v.get('spacy', '?')}, Thinc {v.get('thinc', '?')}, numpy {v.get('numpy', '?')}, "
        f"spacy-rnn-ner {v.get('spacy-rnn-ner', '?')} (git {m.get('git', '?')}); "
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
    lines += ["## Medians over seeds", "",
              "Each figure is the median over the seeds of one training per seed; dev F and "
              "test F also give the spread, (min–max) over seeds.", ""]
    rows = []
    for s in systems:
        S = s["summary"]
        rows.append(
            [s["name"], str(len(s["seeds"])), median_cell(S["dev_p"]), median_cell(S["dev_r"]),
             headline_cell(S["dev_f"]), median_cell(S["test_p"]), median_cell(S["test_r"]),
             headline_cell(S["test_f"])]
            + [median_cell(S[f"test_{l}_f"]) if f"test_{l}_f" in S else "n/a" for l in LABELS]
            + [median_cell(S["train_minutes"], 1, 1), f"{S['steps']['median']:,.0f}",
               median_cell(S["epochs"], 1, 1), f"{S['train_words_per_s']['median']:,.0f}",
               f"{S['eval_words_per_s']['median']:,.0f}", median_cell(S["size_mb"], 1, 1)])
    lines += table(["System", "seeds", "dev P", "dev R", "dev F", "test P", "test R", "test F"]
                   + [f"test {l} F" for l in LABELS]
                   + ["train min", "steps", "epochs", "train words/s", "eval words/s", "size MB"],
                   rows)
    lines += ["", "Configs: " + "; ".join(f"{s['name']}: `{s['config']}`" for s in systems)
              + ".", ""]
    lines += ["### Per type on test (medians)", ""]
    lines += table(["System"] + [f"{l} {x}" for l in LABELS for x in ("P", "R", "F")],
                   [[s["name"]] + [median_cell(s["summary"][k]) if k in s["summary"] else "n/a"
                                   for l in LABELS for k in (f"test_{l}_p", f"test_{l}_r",
                                                             f"test_{l}_f")]
                    for s in systems])
    lines += ["", "### Spread over seeds (min–max)", ""]
    spread_keys = (["dev_p", "dev_r", "dev_f", "test_p", "test_r", "test_f"]
                   + [f"test_{l}_f" for l in LABELS])
    lines += table(["System", "dev P", "dev R", "dev F", "test P", "test R", "test F"]
                   + [f"test {l} F" for l in LABELS] + ["steps"],
                   [[s["name"]] + [range_cell(s["summary"][k]) if k in s["summary"] else "n/a"
                                   for k in spread_keys]
                    + [f"{s['summary']['steps']['min']:,}–{s['summary']['steps']['max']:,}"] for s in systems])
    lines += ["", "### Each seed", ""]
    rows = []
    for s in systems:
        for r in s["runs"]:
            d, t, tr = r["eval"]["dev"], r["eval"]["test"], r["train"]
            rows.append([s["name"], str(r["seed"]), fmt(d["ents_f"]), fmt(t["ents_p"]),
                         fmt(t["ents_r"]), fmt(t["ents_f"])]
                        + [fmt(t["per_type"].get(l, {}).get("f")) for l in LABELS]
                        + [f"{tr['steps']:,}", f"{tr['words_per_s']:,.0f}", tr["stop_reason"],
                           f"{tr['best_step']:,}"])
    lines += table(["System", "seed", "dev F", "test P", "test R", "test F"]
                   + [f"test {l} F" for l in LABELS]
                   + ["steps", "train words/s", "stopped by", "model-best at step"], rows)
    lines += ["", "## Model-best over training time", ""]
    lines.append(f"![test F1 vs training minutes]({Path(data['plot']).name})" if plot_note is None
                 else f"(no plot: {plot_note})")
    lines.append("")
    budget = float(run.get("budget_minutes") or 0)
    marks = [f * budget for f in CURVE_FRACTIONS]
    lines += ["Dev / test F of model-best after a given share of the budget, median over "
              "seeds (test scored outside the budget each time the dev score improved; "
              "– until every seed has a model-best):", ""]
    rows = []
    for s in systems:
        cells = []
        for i, mark in enumerate(marks):
            pts = [best_at(r["train"]["curve"], mark, i == len(marks) - 1) for r in s["runs"]]
            if not pts or any(p is None for p in pts):
                cells.append("–")
                continue
            cell = fmt(statistics.median(p["dev_f"] for p in pts), 1)
            if all("test_f" in p for p in pts):
                cell += f" / {fmt(statistics.median(p['test_f'] for p in pts), 1)}"
            cells.append(cell)
        rows.append([s["name"]] + cells)
    lines += table(["System"] + [f"{mk:.3g} min" for mk in marks], rows)
    threads = systems[0]["runs"][0]["eval"]["threads"] if systems else "?"
    # Runs from before --sents existed were scored without sentence starts.
    sents = {stage: sorted({r[stage].get("sents", "none") for s in systems for r in s["runs"]})
             for stage in ("eval", "train")}
    sents_text = {"gold": "the reference's tokens and sentence starts (`--sents gold`, as CoNLL's "
                  "sentence-level evaluation)",
                  "none": "the reference's tokens only (`--sents none`, spaCy's `Corpus`, as "
                  "`spacy evaluate`)"}
    lines += [
        "",
        "## What the numbers mean",
        "",
        "- **Seeds**: every system is trained once per seed (`[system] seed`: weight "
        "initialisation, dropout, batch order) and each training is scored on its own. "
        "A figure is the **median** over seeds (for an even count, the mean of the two "
        "middle values); the **spread** is the lowest and highest value over seeds. "
        "The median of each figure is taken on its own, so the medians of P, R and F "
        "need not come from one seed.",
        "- **P/R/F**: spaCy's `Scorer` (`nlp.evaluate`), exact-match entity spans, "
        "micro-averaged, in %, for model-best (the checkpoint with the best dev score). "
        "The input docs have " + " / ".join(sents_text[x] for x in sents["eval"]) + "; "
        "both systems keep entities inside sentences. The test F of the plot and of "
        "the model-best-over-time table was scored with "
        + " / ".join(sents_text[x] for x in sents["train"]) + ". Model-best itself is "
        "chosen by spaCy's training loop, whose dev scoring never has sentence starts.",
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
        f"{threads} BLAS thread(s), the pipeline's own batch size.",
        "- **size MB**: bytes of `model-best/` on disk ÷ 10⁶.",
        "- The plot has one line per seed, one colour per system. Left: test F of "
        "model-best, scored each time the dev score improved (outside the budget), at "
        "the training minutes when it was reached; right: dev F at every evaluation of "
        "the training loop.",
        "",
    ]
    return "\n".join(lines)


def plot(data: Dict[str, Any], png: Path) -> Optional[str]:
    """Write the plot, one line per system and seed; return why not, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        msg = "matplotlib is not installed (pip install matplotlib)"
        log(f"skipping the plot: {msg}")
        return msg
    fig, (ax_test, ax_dev) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, s in enumerate(data["systems"]):
        color = colors[n % len(colors)]
        for i, r in enumerate(s["runs"]):
            label = s["name"] if i == 0 else None
            curve, minutes = r["train"]["curve"], r["train"]["train_minutes"]
            best = [c for c in curve if c["best"] and "test_f" in c]
            if best:
                xs = [c["minutes"] for c in best] + [minutes]
                ys = [100 * c["test_f"] for c in best] + [100 * best[-1]["test_f"]]
                ax_test.step(xs, ys, where="post", color=color, label=label, linewidth=1)
            else:
                ax_test.plot([minutes], [100 * r["eval"]["test"]["ents_f"]], "o", color=color,
                             label=label)
            ax_dev.plot([c["minutes"] for c in curve], [100 * c["dev_f"] for c in curve],
                        ".-", color=color, label=label, linewidth=1)
    budget = data["train_run"].get("budget_minutes")
    title = f"budget {budget} min" + (" — SMOKE RUN" if data["smoke"] else "")
    ax_test.set(title=f"test F1 of model-best ({title})", xlabel="training minutes",
                ylabel="ents F1 (%)")
    ax_dev.set(title="dev F1 at each evaluation (one line per seed)",
               xlabel="training minutes", ylabel="ents F1 (%)")
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
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train every system once per seed (default "
                   + " ".join(map(str, DEFAULT_SEEDS)) + "); the report gives the median and "
                   "the min-max over seeds. evaluate/report default to the seeds of the last "
                   "train step")
    p.add_argument("--seed", type=int, default=None,
                   help="one seed: the same as --seeds N (kept for older command lines)")
    p.add_argument("--from-json", default=None,
                   help="report: re-render the md and the plot from a report JSON this script "
                   "wrote, instead of from the workdir")
    p.add_argument("--pipe-repeats", type=int, default=3, help="timed nlp.pipe passes (median)")
    p.add_argument("--sents", choices=("gold", "none"), default="gold",
                   help="input docs of the dev/test scoring get the reference's sentence starts "
                   "(gold, as CoNLL's sentence-level evaluation; default) or not (none: "
                   "spaCy's Corpus, as `spacy evaluate`)")
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
    if args.seed is not None:
        if args.seeds is not None:
            p.error("give --seeds or --seed, not both")
        args.seeds = [args.seed]
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds: a seed appears twice ({args.seeds})")
    if args.from_json and args.command != "report":
        p.error("--from-json is for the report step")
    args.command_line = _common.command_line("conll03.py", argv)
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
