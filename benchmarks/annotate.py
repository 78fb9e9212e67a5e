"""Throughput of `python -m spacy_rnn_ner annotate` on each engine: docs/s
for the local engine with 1 process and with `n_process=2`, and for the Ray
engine with 1 and 2 workers, on the same corpus, with the peak memory (RSS)
of each worker process.

    python benchmarks/annotate.py                      # CoNLL-2003 test docs x >= 100k
    python benchmarks/annotate.py --limit 2000         # a small run

The corpus is the CoNLL-2003 test documents (`-DOCSTART-` to `-DOCSTART-`,
tokens joined by spaces), read by path from ../shared/data/conll2003/test.iob
and repeated until there are `--repeat-to` docs (ids differ per copy), or
the bundled corpus's dev sentences when that file is absent. The model is
`--model`, or by default the `rnn_ner` component's default model (BiLSTM,
width 96) trained for a few steps on the bundled corpus: speed depends on
the architecture, not on how well it was trained.

Each configuration runs in a fresh subprocess (so that its memory is its
own) through `annotate_corpus`, into a scratch output folder. docs/s counts
the whole job after the corpus is counted: model loading, and for Ray the
pool's start, included; starting the local Ray instance itself is timed
apart (`ray_init_s`). Writes `--out`.md and .json.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

REPO = _common.REPO
CONLL_TEST = REPO.parent / "shared" / "data" / "conll2003" / "test.iob"
CACHE = REPO / "benchmarks" / "cache" / "annotate"
CONFIGS = [
    {"name": "local, 1 process", "engine": "local", "n_process": 1},
    {"name": "local, n_process=2", "engine": "local", "n_process": 2},
    {"name": "Ray, 1 worker", "engine": "ray", "workers": 1},
    {"name": "Ray, 2 workers", "engine": "ray", "workers": 2},
]
log = _common.logger("annotate")


def conll_documents(path: Path) -> List[str]:
    """The documents of a CoNLL-2003 .iob file, tokens joined by spaces."""
    docs: List[List[str]] = []
    for line in path.read_text(encoding="utf8").splitlines():
        if line.startswith("-DOCSTART-"):
            docs.append([])
        elif line.strip():
            if not docs:
                docs.append([])
            docs[-1].append(line.split()[0])
    return [" ".join(tokens) for tokens in docs if tokens]


def bundled_documents() -> List[str]:
    sys.path.insert(0, str(REPO / "corpus"))
    from build import parse_markup

    lines = (REPO / "corpus" / "dev.txt").read_text(encoding="utf8").splitlines()
    return [parse_markup(line)[0] for line in lines if line.strip() and not line.startswith("#")]


def write_corpus(texts: List[str], n_docs: int, path: Path) -> None:
    with open(path, "w", encoding="utf8") as f:
        for i in range(n_docs):
            f.write(json.dumps({"id": f"d{i}", "text": texts[i % len(texts)]}) + "\n")


def train_model(path: Path, steps: int) -> None:
    """The default rnn_ner model, trained `steps` updates on the bundled corpus."""
    import spacy
    from spacy.training import Example
    from spacy.util import minibatch
    from thinc.api import fix_random_seed

    sys.path.insert(0, str(REPO / "corpus"))
    from build import parse_markup

    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner")
    lines = (REPO / "corpus" / "train.txt").read_text(encoding="utf8").splitlines()
    examples = []
    for line in lines:
        if line.strip() and not line.startswith("#"):
            text, spans = parse_markup(line)
            examples.append(Example.from_dict(nlp.make_doc(text), {"entities": spans}))
    optimizer = nlp.initialize(lambda: examples)
    batches = list(minibatch(examples, 64))
    for step in range(steps):
        nlp.update(batches[step % len(batches)], sgd=optimizer)
    nlp.to_disk(path)


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One configuration, in this (fresh) process."""
    from spacy_rnn_ner.annotate import annotate_corpus

    options: Dict[str, Any] = {}
    ray_init_s = None
    rss_dir = Path(spec["rss_dir"])
    if spec["engine"] == "ray":
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
        ray_init_s = time.perf_counter() - start
        options = {"workers": spec["workers"], "annotator": rss_annotator(rss_dir)}
    else:
        options = {"n_process": spec["n_process"]}
    summary = annotate_corpus(spec["model"], spec["input"], spec["output"], engine=spec["engine"],
                              batch_size=spec["batch_size"], part_size=10_000, progress=False,
                              **options)
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_kib, self_cpu = me.ru_maxrss, me.ru_utime + me.ru_stime
    driver_cpu: Optional[float] = self_cpu
    if spec["engine"] == "ray":
        actors = [json.loads(p.read_text()) for p in rss_dir.glob("*.json")]
        workers = [a["rss_kib"] for a in actors]
        worker_cpu = sum(a["cpu_s"] for a in actors)
        import ray

        ray.shutdown()
    elif spec["n_process"] > 1:
        workers = [children.ru_maxrss]  # the largest of the (joined) child processes
        worker_cpu = children.ru_utime + children.ru_stime
    else:
        workers, worker_cpu, driver_cpu = [self_kib], self_cpu, None
    return {"written": summary.written, "errors": summary.errors, "seconds": summary.seconds,
            "docs_per_s": summary.docs_per_second, "startup_s": summary.startup_seconds,
            "ray_init_s": ray_init_s, "worker_cpu_s": worker_cpu, "driver_cpu_s": driver_cpu,
            "driver_rss_mib": self_kib / 1024, "worker_rss_mib": [k / 1024 for k in workers]}


def rss_annotator(rss_dir: Path):
    """The Ray actor class, recording its peak RSS after each batch."""
    from spacy_rnn_ner.annotate_ray import RayAnnotator

    class RSSAnnotator(RayAnnotator):
        def __call__(self, batch):
            out = super().__call__(batch)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            (rss_dir / f"{os.getpid()}.json").write_text(
                json.dumps({"rss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}))
            return out

    return RSSAnnotator


def driver_ceiling(input_path: Path, output_path: Path) -> float:
    """docs/s of the driver's own work for a job (read and check the rows,
    write the records already made), without annotating: the most any number
    of workers can get through this driver."""
    from spacy_rnn_ner.annotate import PartWriter, read_output, read_rows

    records = list(read_output(output_path))
    scratch = CACHE / "ceiling"
    shutil.rmtree(scratch, ignore_errors=True)
    start = time.perf_counter()
    writer = PartWriter(scratch, "jsonl", 10_000)
    for row, record in zip(read_rows(input_path, "jsonl"), records):
        writer.add(json.loads(json.dumps(record)))  # as the Ray driver decodes them
    writer.commit()
    seconds = time.perf_counter() - start
    shutil.rmtree(scratch, ignore_errors=True)
    return len(records) / seconds


def report(result: Dict[str, Any]) -> str:
    lines = [
        "# annotate: docs/s per engine",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['machine']['date']}  ",
        f"Corpus: {result['corpus']}, {result['n_docs']:,} docs, {result['n_words']:,} words  ",
        f"Model: {result['model']}, batch size {result['batch_size']}  ",
        f"Code: git {result['machine']['git']}; Ray {result['machine']['versions'].get('ray')}  ",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cpu_count']} cores, shared with "
        f"other jobs (load average at start "
        f"{', '.join(f'{x:.1f}' for x in result['machine']['loadavg'] or [])}): read the ratios.",
        "",
        "docs/s and seconds: the whole job, pipeline loading and worker start included; to 1st record: "
        "seconds until the first record reached the driver; Ray start: `ray.init()` of the local "
        "instance, not in the job's time; CPU s: user + system CPU seconds of the worker processes "
        "(all of them together; pipeline loading included) and of the driver process (for the local "
        "engine with 1 process, one process does both), which the other jobs on a shared machine "
        "change much less than the wall time.",
        "",
        "| engine | docs/s | words/s | seconds | to 1st record (s) | Ray start (s) | worker CPU s "
        "| driver CPU s | peak RSS per worker (MiB) | driver RSS (MiB) |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for run in result["runs"]:
        rss = ", ".join(f"{m:.0f}" for m in sorted(run["worker_rss_mib"])) or "n/a"
        init = f"{run['ray_init_s']:.1f}" if run["ray_init_s"] is not None else ""
        driver = f"{run['driver_rss_mib']:.0f}" if run["engine"] == "ray" else ""
        words = run["docs_per_s"] * result["n_words"] / result["n_docs"]
        dcpu = f"{run['driver_cpu_s']:.1f}" if run["driver_cpu_s"] is not None else ""
        lines.append(f"| {run['name']} | {run['docs_per_s']:,.1f} | {words:,.0f} | {run['seconds']:.1f} | "
                     f"{run['startup_s']:.1f} | {init} | {run['worker_cpu_s']:.1f} | {dcpu} | {rss} | {driver} |")
    lines += [
        "",
        f"Driver ceiling (read + check rows, decode and write records, no annotating): "
        f"{result['driver_docs_per_s']:,.0f} docs/s.",
        "",
        f"All outputs identical: {result['identical']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="pipeline to run (default: train a small one)")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--repeat-to", type=int, default=100_000, help="docs in the corpus (copies of the source)")
    p.add_argument("--limit", type=int, default=None, help="use only this many docs (a small run)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-conll", action="store_true", help="use the bundled corpus")
    p.add_argument("--only", nargs="*", default=None, help="configuration names to run (default all)")
    p.add_argument("--out", default="benchmarks/results/annotate", help="writes OUT.md and OUT.json")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--render", action="store_true", help="only rewrite OUT.md from OUT.json")
    args = p.parse_args(argv)
    if args.render:
        out = _common.repo_path(args.out)
        out.with_suffix(".md").write_text(report(_common.read_json(out.with_suffix(".json"))))
        return 0
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    machine = _common.machine_facts(_common.DISTS + ("ray",))
    if CONLL_TEST.exists() and not args.no_conll:
        texts, corpus = conll_documents(CONLL_TEST), "CoNLL-2003 test documents (repeated)"
    else:
        texts, corpus = bundled_documents(), "bundled corpus dev sentences (repeated)"
    n_docs = min(args.repeat_to, args.limit or args.repeat_to)
    input_path = CACHE / "corpus.jsonl"
    write_corpus(texts, n_docs, input_path)
    n_words = sum(len(texts[i % len(texts)].split()) for i in range(n_docs))
    model = args.model
    if model is None:
        model = str(CACHE / "model")
        log(f"training the default rnn_ner model for {args.train_steps} steps -> {model}")
        train_model(Path(model), args.train_steps)
        model_desc = f"default rnn_ner model (BiLSTM, width 96), {args.train_steps} steps on the bundled corpus"
    else:
        model_desc = model
    runs = []
    outputs = []
    for config in CONFIGS:
        if args.only and config["name"] not in args.only:
            continue
        out_dir = CACHE / f"out-{config['engine']}-{config.get('n_process', config.get('workers'))}"
        rss_dir = CACHE / "rss"
        for d in (out_dir, rss_dir):
            shutil.rmtree(d, ignore_errors=True)
        rss_dir.mkdir()
        spec = {**config, "model": model, "input": str(input_path), "output": str(out_dir),
                "batch_size": args.batch_size, "rss_dir": str(rss_dir)}
        log(f"{config['name']}: {n_docs} docs")
        env = _common.thread_env(1)
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                              capture_output=True, text=True, env=env, cwd=REPO)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"{config['name']} failed")
        run = {**config, **json.loads(proc.stdout.strip().splitlines()[-1])}
        log(f"{config['name']}: {run['docs_per_s']:.1f} docs/s")
        runs.append(run)
        outputs.append(out_dir)
    from spacy_rnn_ner.annotate import read_output

    first = list(read_output(outputs[0]))
    identical = all(list(read_output(o)) == first for o in outputs[1:])
    result = {
        "command": _common.command_line("annotate.py", sys.argv[1:] if argv is None else argv),
        "machine": machine, "corpus": corpus, "n_docs": n_docs, "n_words": n_words,
        "model": model_desc, "batch_size": args.batch_size, "runs": runs, "identical": identical,
        "driver_docs_per_s": driver_ceiling(input_path, outputs[0]),
    }
    print(_common.write_report(_common.repo_path(args.out), result, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
