"""Helpers shared by the benchmark scripts: logging, thread settings for worker
processes, facts about the machine, JSON files and paths.

The scripts run as `python benchmarks/X.py` (then this folder is on sys.path)
or are loaded by file path in the tests, so each one puts this folder on
sys.path before `import _common`.
"""
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
DISTS = ("spacy", "thinc", "numpy", "spacy-rnn-ner")


def logger(tag: str = "", *, stdout: bool = False) -> Callable[[str], None]:
    """A log function printing `[tag HH:MM:SS] text`, flushed, to stderr (or
    stdout). The stream is looked up at each call, so redirections apply."""
    prefix = f"{tag} " if tag else ""

    def log(text: str) -> None:
        stream = sys.stdout if stdout else sys.stderr
        print(f"[{prefix}{time.strftime('%H:%M:%S')}] {text}", file=stream, flush=True)

    return log


def thread_vars(threads: int) -> Dict[str, str]:
    """The BLAS/OpenMP thread-count variables, all set to `threads`. They are
    read when the libraries load: set them for a fresh process."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, not {threads}")
    return {var: str(threads) for var in THREAD_VARS}


def thread_env(threads: int, **extra: str) -> Dict[str, str]:
    """The environment for a worker process: this one's, with `threads` BLAS
    threads and the `extra` variables."""
    return {**os.environ, **thread_vars(threads), **extra}


def versions(dists: Iterable[str] = DISTS) -> Dict[str, Optional[str]]:
    """Installed version of each distribution, None when not installed."""
    found: Dict[str, Optional[str]] = {}
    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def loadavg() -> Optional[List[float]]:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def git_revision() -> Optional[str]:
    """Short HEAD of the repository, `+dirty` with uncommitted changes to
    tracked files; None outside a git checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True)
    except OSError:
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_facts(dists: Iterable[str] = DISTS) -> Dict[str, Any]:
    """Where and with what a benchmark ran: CPU, cores, memory, load, Python,
    package versions, git revision."""
    facts: Dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": None,
        "simd": None,
        "cpu_count": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_gib": None,
        "loadavg": loadavg(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        for line in cpuinfo:
            if line.startswith("model name") and facts["cpu"] is None:
                facts["cpu"] = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and facts["simd"] is None:
                have = set(line.split(":", 1)[1].split())
                facts["simd"] = [f for f in ("avx2", "fma", "avx512f") if f in have]
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    facts["versions"] = versions(dists)
    facts["git"] = git_revision()
    return facts


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command as a user would type it from the repository root."""
    return " ".join(["python", f"benchmarks/{script}", *map(shlex.quote, argv)])


def parse_models(specs: Sequence[str]) -> List[Tuple[str, str]]:
    """(name, path) of each `--models NAME=PATH` argument."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--models: expected NAME=PATH, got {spec!r}")
        out.append((name, path))
    return out


def repo_path(path: str) -> Path:
    """Relative paths are relative to the repository root (as in the configs),
    whatever the working directory: weasel runs commands from benchmarks/."""
    p = Path(path)
    return p if p.is_absolute() else (REPO / p).resolve()


def show(path: Path) -> str:
    """`path` relative to the repository root, for reports."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return os.path.relpath(path.resolve(), REPO)


def json_safe(value: Any) -> Any:
    """NaN as null (strict JSON has no NaN), in nested dicts and lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, data: Any, indent: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(data), indent=indent) + "\n", encoding="utf8")


def write_report(out: Path, data: Any, render: Callable[[Any], str]) -> str:
    """Write OUT.json (the data) and OUT.md (`render(data)`); return the Markdown."""
    write_json(out.with_suffix(".json"), data)
    text = render(data)
    out.with_suffix(".md").write_text(text, encoding="utf8")
    return text


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


@contextlib.contextmanager
def rnn_path(path: str) -> Iterator[None]:
    """Run the RNN layer on compute path `path` ("avx512", "c" or "numpy",
    as `backend_info()` names them) inside the block, whatever the machine
    would pick: switches the C kernels or their AVX-512 part off. Not
    thread-safe (module globals); for benchmarks."""
    from spacy_rnn_ner.layers import backends, cells

    if path not in backends.available():
        raise ValueError(f"the {path} path does not run here: {backends.available()}")
    saved = cells.USE_PACKED, cells._cpu_kernels
    if path == "c":
        cells.USE_PACKED = False
    elif path == "numpy":
        cells._cpu_kernels = None
    try:
        yield
    finally:
        cells.USE_PACKED, cells._cpu_kernels = saved
