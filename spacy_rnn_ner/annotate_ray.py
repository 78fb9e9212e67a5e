"""The Ray engine of `annotate`: Ray Data `map_batches` over an actor pool,
each actor loading the pipeline once and annotating batch after batch with
`annotate_batch`, the function the local engine runs.

Imported only for `--engine ray` (it needs `spacy-rnn-ner[ray]`). The
driver reads the input (`annotate.read_rows`) and hands it to Ray in windows
of `window` rows, so its memory stays bounded; each record comes back with
the sequence number of its row, and the driver checks that the numbers come
back in order, each exactly once, before the writer sees a record: a batch
that Ray re-ran after a worker died can't double a row, and a lost one
stops the job instead of leaving a gap.
"""
import json
import logging
from typing import Any, Dict, Iterable, Iterator, List, Optional, Type

try:
    import pyarrow as pa
    import ray
    import ray.data
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        "the ray engine needs Ray: pip install 'spacy-rnn-ner[ray]'"
    ) from err

from .annotate import DEFAULT_BATCH_SIZE, Record, RecordMaker, Row, annotate_batch, batches, load_pipeline

# Rows the driver hands to Ray at a time: a new actor pool (one pipeline load
# per worker) per window; at ~1 kB a row, 100k rows is ~100 MB in the driver.
DEFAULT_WINDOW = 100_000
logger = logging.getLogger(__name__)


class RayAnnotator:
    """The actor of the pool: loads the pipeline once, then annotates Arrow
    batches of rows (columns seq, id, text, error) into batches of (seq,
    record as JSON)."""

    def __init__(self, model: str, threshold: Optional[float] = None) -> None:
        self.nlp = load_pipeline(model, threshold)
        self.maker = RecordMaker.from_nlp(self.nlp)

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        rows = batch.to_pylist()
        records = annotate_batch(self.nlp, rows, self.maker)
        return pa.table({
            "seq": pa.array([row["seq"] for row in rows], pa.int64()),
            "record": pa.array([json.dumps(r, ensure_ascii=False) for r in records], pa.string()),
        })


def ray_records(
    model: str,
    rows: Iterable[Row],
    *,
    threshold: Optional[float] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 1,
    address: Optional[str] = None,
    window: int = DEFAULT_WINDOW,
    annotator: Type[RayAnnotator] = RayAnnotator,
) -> Iterator[Record]:
    """One record per row, in input order, annotated by a pool of `workers`
    Ray actors.

    model (str): Path or package name of the pipeline, valid on every node.
    address (Optional[str]): The cluster to join (e.g. "auto" or
        "ray://host:10001"); None starts a local one, unless this process is
        already connected to one.
    window (int): Rows handed to Ray at a time.
    annotator (Type[RayAnnotator]): The actor class (tests use a subclass).
    """
    model = str(model)
    seq = 0
    for chunk in batches(rows, window):
        if seq == 0:  # not before there is work: a resumed, finished job needs no Ray
            _connect(address)
        items: List[Dict[str, Any]] = []
        for row in chunk:
            items.append({"seq": seq, **row})
            seq += 1
        yield from _run_window(items, model, threshold, batch_size, workers, annotator)


def _connect(address: Optional[str]) -> None:
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="warning")
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # same output as the local engine
    ctx.enable_progress_bars = False  # the driver shows its own bar
    ctx.print_on_execution_start = False


def _run_window(items: List[Dict[str, Any]], model: str, threshold: Optional[float],
                batch_size: int, workers: int, annotator: Type[RayAnnotator]) -> Iterator[Record]:
    # One block per batch, so that the pool's actors share the window.
    table = pa.Table.from_pylist(items, schema=pa.schema([
        ("seq", pa.int64()), ("id", pa.string()), ("text", pa.string()), ("error", pa.string())]))
    blocks = [table.slice(i, batch_size) for i in range(0, len(table), batch_size)]
    ds = ray.data.from_arrow(blocks).map_batches(
        annotator,
        fn_constructor_kwargs={"model": model, "threshold": threshold},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    expected = items[0]["seq"]
    end = expected + len(items)
    doubled = 0
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for seq, record in zip(batch.column("seq").to_pylist(), batch.column("record").to_pylist()):
            if seq < expected:  # a re-run batch whose rows were already out
                doubled += 1
                continue
            if seq != expected:
                raise RuntimeError(f"Ray lost rows {expected}..{seq - 1} of this run")
            expected += 1
            yield json.loads(record)
    if expected != end:
        raise RuntimeError(f"Ray lost rows {expected}..{end - 1} of this run")
    if doubled:
        logger.warning("Ray returned %d rows twice (a re-run batch); kept once each", doubled)
