"""The Ray engine of annotate, on a real local Ray cluster that the tests
start (2 CPUs, 127.0.0.1): same output as the local engine, nothing lost or
doubled when a worker dies mid-run, resume from parts written before."""
import json
import os
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[test,ray]' to run these tests")
import pyarrow as pa  # noqa: E402  (ray[data] brings it)
import ray  # noqa: E402

from spacy_rnn_ner.annotate import annotate_corpus, read_output  # noqa: E402
from spacy_rnn_ner.annotate_ray import RayAnnotator  # noqa: E402

from .annotate_helpers import (  # noqa: E402
    assert_same_records,
    train_tiny_pipeline,
    write_jsonl_with_bad_rows,
)

N_GOOD = 60
BATCH = 8
# The row whose batch kills its worker once, half-way through the input.
CRASH_SEQ = 33


class CrashOnce(RayAnnotator):
    """Exits its worker process (as a killed or OOM-killed worker would)
    the first time it gets the batch holding row CRASH_SEQ; the marker file
    makes it crash once only, whichever actor gets the retry."""

    def __init__(self, model: str, threshold=None, marker: str = "") -> None:
        super().__init__(model, threshold)
        self.marker = marker

    def __call__(self, batch):
        if CRASH_SEQ in batch.column("seq").to_pylist() and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().__call__(batch)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return train_tiny_pipeline(tmp_path_factory.mktemp("annotate-ray") / "model")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="warning", runtime_env={"env_vars": {"RAY_DEDUP_LOGS": "0"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(model_path, tmp_path_factory):
    """The input file, its ids in order, and the local engine's output."""
    tmp = tmp_path_factory.mktemp("corpus")
    ids = write_jsonl_with_bad_rows(tmp / "in.jsonl", N_GOOD)
    annotate_corpus(model_path, tmp / "in.jsonl", tmp / "local", max_chars=1000, threshold=0.05,
                    part_size=16, progress=False)
    return tmp / "in.jsonl", ids, list(read_output(tmp / "local"))


def test_annotator_without_a_cluster(model_path):
    """The actor's logic, called in this process: seq is kept, one JSON
    record per row, error rows pass through."""
    actor = RayAnnotator(str(model_path), threshold=0.5)
    batch = pa.table({"seq": [5, 6], "id": ["a", "b"], "text": ["Ada went to Paris .", None],
                      "error": [None, "missing text field 'text'"]})
    out = actor(batch)
    assert out.column("seq").to_pylist() == [5, 6]
    records = [json.loads(r) for r in out.column("record").to_pylist()]
    assert [r["id"] for r in records] == ["a", "b"]
    assert records[0]["error"] is None and records[0]["alternatives"] is not None
    assert records[1]["error"] == "missing text field 'text'"


@pytest.mark.slow
def test_ray_output_equals_local_output(ray_cluster, model_path, corpus, tmp_path):
    path, ids, local = corpus
    # window=40: the 65 rows go to Ray in 2 windows (2 actor pools), and the
    # row numbers must run on across them.
    summary = annotate_corpus(model_path, path, tmp_path / "ray", engine="ray", workers=2,
                              batch_size=BATCH, max_chars=1000, threshold=0.05, part_size=16,
                              progress=False, window=40)
    assert summary.written == len(ids) and summary.errors == 5
    assert_same_records(read_output(tmp_path / "ray"), local)
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(
        f"part-{i:05d}.jsonl" for i in range((len(ids) + 15) // 16))


@pytest.mark.slow
def test_killed_worker_and_resume_lose_and_double_nothing(ray_cluster, model_path, corpus, tmp_path):
    """Resume a job whose first part a local run wrote, on Ray, with a worker
    that dies mid-run: every id comes out exactly once, records as local."""
    path, ids, local = corpus
    out, marker = tmp_path / "out", tmp_path / "crashed"
    annotate_corpus(model_path, path, out, max_chars=1000, threshold=0.05, part_size=16,
                    progress=False, n_process=1)
    for part in sorted(out.iterdir())[1:]:
        part.unlink()  # as if stopped after the first part
    summary = annotate_corpus(
        model_path, path, out, engine="ray", workers=2, batch_size=BATCH, max_chars=1000,
        threshold=0.05, part_size=16, progress=False,
        annotator=CrashOnce_with(marker),
    )
    assert marker.exists(), "the worker did not crash: the test tested nothing"
    assert summary.skipped == 16 and summary.written == len(ids) - 16
    got = [r["id"] for r in read_output(out)]
    assert Counter(got) == Counter(ids) and got == ids
    assert_same_records(read_output(out), local)


def CrashOnce_with(marker: Path):
    """CrashOnce with its marker path bound (Ray passes only the
    constructor kwargs it is given)."""

    class Bound(CrashOnce):
        def __init__(self, model: str, threshold=None) -> None:
            super().__init__(model, threshold, marker=str(marker))

    return Bound
