"""Annotate a corpus with a trained pipeline, on any engine.

This module is the part that does not depend on the engine: reading the
input rows (JSONL, Parquet or plain text, each row with an id), turning
annotated docs into output records, writing the records in parts that are
each committed atomically, and resuming a stopped job from the parts already
written. The local engine (`nlp.pipe`, optionally with `n_process`) is here
too; the Ray engine is in `annotate_ray.py`, imported only when asked for, so
that this package never imports Ray.

Every input row gives exactly one output record with its id: a row that
can't be annotated (bad JSON, no id, no text, text not a string, text
longer than `max_chars`) gives a record whose `error` says why, and no
entities.
"""
import json
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

INPUT_FORMATS = ("jsonl", "parquet", "text")
OUTPUT_FORMATS = ("jsonl", "parquet")
ENGINES = ("local", "ray")
# spaCy's default `nlp.max_length`: longer texts become error records.
DEFAULT_MAX_CHARS = 1_000_000
DEFAULT_BATCH_SIZE = 64
DEFAULT_PART_SIZE = 10_000
PART_PREFIX = "part-"
TMP_PREFIX = ".tmp-"

Row = Dict[str, Any]  # {"id": str, "text": Optional[str], "error": Optional[str]}
Record = Dict[str, Any]  # {"id", "entities", "alternatives", "error"}


def require_pyarrow(what: str = "Parquet"):
    """Import pyarrow, or raise an ImportError that says how to install it."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"{what} needs pyarrow, which is not installed: "
            "pip install 'spacy-rnn-ner[ray]' (or pip install pyarrow)"
        ) from err
    return pyarrow


def guess_input_format(path: Union[str, Path]) -> str:
    """The input format from the file name: .jsonl/.json, .parquet, else text."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return "text"


# ---------------------------------------------------------------- reading


def read_rows(
    path: Union[str, Path],
    fmt: str,
    *,
    id_field: str = "id",
    text_field: str = "text",
    max_chars: int = DEFAULT_MAX_CHARS,
    skip: Optional[Set[str]] = None,
) -> Iterator[Row]:
    """Yield the input rows in file order, each as {"id", "text", "error"}.

    Ids are strings (an integer id 7 becomes "7"). A text file's rows are its
    lines, with ids "1", "2", ... (line numbers). A JSONL row that has no
    usable id gets the id "line:N" and a Parquet one "row:N" (1-based), so
    that its error record can be found. Blank JSONL lines are not rows.

    path (Union[str, Path]): The input file.
    fmt (str): "jsonl", "parquet" or "text".
    id_field (str): The field or column with the id.
    text_field (str): The field or column with the text.
    max_chars (int): Texts longer than this become error records.
    skip (Optional[Set[str]]): Ids not to yield (already annotated).
    """
    if fmt not in INPUT_FORMATS:
        raise ValueError(f"input format must be one of {INPUT_FORMATS}, not {fmt!r}")
    if fmt == "text":
        rows = _read_text(path)
    elif fmt == "jsonl":
        rows = _read_jsonl(path, id_field, text_field)
    else:
        rows = _read_parquet(path, id_field, text_field)
    skip = skip or set()
    first_seen: Dict[str, int] = {}
    for n, row in enumerate(rows, 1):
        if row["error"] is None and len(row["text"]) > max_chars:
            row["text"] = None
            row["error"] = f"text too long: more than max_chars={max_chars} characters"
        if row["id"] in first_seen:
            row["text"] = None
            row["error"] = f"duplicate id {row['id']!r}: ids must be unique (first at row {first_seen[row['id']]})"
        else:
            first_seen[row["id"]] = n
        if row["id"] not in skip:
            yield row


def count_rows(path: Union[str, Path], fmt: str) -> int:
    """How many rows `read_rows` reads from the file (before skipping)."""
    if fmt == "parquet":
        pa = require_pyarrow()
        return pa.parquet.ParquetFile(path).metadata.num_rows
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if fmt == "text" or line.strip():
                n += 1
    return n


def _row(row_id: str, text: Optional[str] = None, error: Optional[str] = None) -> Row:
    return {"id": row_id, "text": text if error is None else None, "error": error}


def _read_text(path) -> Iterator[Row]:
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                yield _row(str(n), error=f"not UTF-8: {err}")
                continue
            yield _row(str(n), text.rstrip("\r\n"))


def _read_jsonl(path, id_field: str, text_field: str) -> Iterator[Row]:
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            fallback = f"line:{n}"
            try:
                obj = json.loads(line)
            except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
                yield _row(fallback, error=f"bad JSON: {err}")
                continue
            if not isinstance(obj, dict):
                yield _row(fallback, error=f"row is a JSON {type(obj).__name__}, not an object")
                continue
            yield _check_fields(obj.get(id_field, None), id_field in obj, obj.get(text_field),
                                text_field in obj, id_field, text_field, fallback)


def _read_parquet(path, id_field: str, text_field: str) -> Iterator[Row]:
    pa = require_pyarrow()
    pf = pa.parquet.ParquetFile(path)
    names = pf.schema_arrow.names
    missing = [name for name in (id_field, text_field) if name not in names]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(map(repr, missing))} (columns: {names})")
    n = 0
    for batch in pf.iter_batches(columns=[id_field, text_field], batch_size=4096):
        ids = batch.column(id_field).to_pylist()
        texts = batch.column(text_field).to_pylist()
        for row_id, text in zip(ids, texts):
            n += 1
            yield _check_fields(row_id, True, text, True, id_field, text_field, f"row:{n}")


def _check_fields(row_id: Any, has_id: bool, text: Any, has_text: bool,
                  id_field: str, text_field: str, fallback: str) -> Row:
    """A row from the id and text values of a JSON object or Parquet row."""
    if not has_id or row_id is None:
        return _row(fallback, error=f"missing id field {id_field!r}")
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        return _row(fallback, error=f"id must be a string or an integer, not {type(row_id).__name__}")
    row_id = str(row_id)
    if not has_text or text is None:
        return _row(row_id, error=f"missing text field {text_field!r}")
    if not isinstance(text, str):
        return _row(row_id, error=f"text must be a string, not {type(text).__name__}")
    return _row(row_id, text)


# ---------------------------------------------------------------- annotating


def load_pipeline(model: Union[str, Path], threshold: Optional[float] = None):
    """`spacy.load(model)`, with `threshold` (recall mode) set on every
    `rnn_ner` component when given."""
    import spacy

    from .pipeline import RNNEntityRecognizer

    nlp = spacy.load(model)
    if threshold is not None:
        pipes = [pipe for _, pipe in nlp.pipeline if isinstance(pipe, RNNEntityRecognizer)]
        if not pipes:
            raise ValueError(f"--threshold needs an rnn_ner component; {model} has {nlp.pipe_names}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        for pipe in pipes:
            if pipe.spans_key is None:
                raise ValueError(f"threshold needs a spans_key, and {pipe.name!r} has spans_key null")
            pipe.threshold = threshold
    return nlp


@dataclass(frozen=True)
class RecordMaker:
    """Turns annotated docs into output records.

    span_keys (Tuple[str, ...]): The span groups holding entity probabilities
        (the `spans_key` of each `rnn_ner` component).
    recall (bool): Whether some component is in recall mode (has a
        threshold): then records list the other spans of the groups as
        `alternatives`; otherwise `alternatives` is None.
    """

    span_keys: Tuple[str, ...]
    recall: bool

    @classmethod
    def from_nlp(cls, nlp) -> "RecordMaker":
        from .pipeline import RNNEntityRecognizer

        pipes = [pipe for _, pipe in nlp.pipeline if isinstance(pipe, RNNEntityRecognizer)]
        keys = tuple(p.spans_key for p in pipes if p.spans_key is not None)
        return cls(keys, any(p.threshold is not None for p in pipes))

    def doc_record(self, row_id: str, doc) -> Record:
        """The record of an annotated doc: its entities (`doc.ents`) with char
        offsets, label, text and probability (None for entities that no
        `rnn_ner` component scored) and, in recall mode, the alternatives."""
        scored: List[Tuple[Any, float]] = []
        for key in self.span_keys:
            group = doc.spans.get(key)
            if group is not None:
                scored.extend(zip(group, group.attrs.get("scores", [None] * len(group))))
        probs = {_span_key(span): _float(p) for span, p in scored}
        entities = [_entity(ent, probs.get(_span_key(ent))) for ent in doc.ents]
        alternatives = None
        if self.recall:
            ent_keys = {_span_key(ent) for ent in doc.ents}
            alternatives = [_entity(s, _float(p)) for s, p in scored if _span_key(s) not in ent_keys]
        return {"id": row_id, "entities": entities, "alternatives": alternatives, "error": None}


def error_record(row_id: str, error: str) -> Record:
    return {"id": row_id, "entities": [], "alternatives": None, "error": error}


def _span_key(span) -> Tuple[int, int, str]:
    return span.start_char, span.end_char, span.label_


def _float(value) -> Optional[float]:
    return None if value is None else float(value)


def _entity(span, prob: Optional[float]) -> Dict[str, Any]:
    return {"start": span.start_char, "end": span.end_char, "label": span.label_,
            "text": span.text, "probability": prob}


def annotate_batch(nlp, rows: Sequence[Row], maker: RecordMaker) -> List[Record]:
    """One record per row, in order. The rows without an error go through
    `nlp.pipe` together; should that raise, they are annotated one by one, so
    that only a doc that fails itself becomes an error record."""
    ok = [row for row in rows if row["error"] is None]
    try:
        docs = list(nlp.pipe([row["text"] for row in ok], batch_size=max(1, len(ok))))
        done = {id(row): maker.doc_record(row["id"], doc) for row, doc in zip(ok, docs)}
    except Exception:
        done = {id(row): _annotate_one(nlp, row, maker) for row in ok}
    return [done[id(row)] if row["error"] is None else error_record(row["id"], row["error"])
            for row in rows]


def _annotate_one(nlp, row: Row, maker: RecordMaker) -> Record:
    try:
        return maker.doc_record(row["id"], nlp(row["text"]))
    except Exception as err:
        return error_record(row["id"], f"annotation failed: {type(err).__name__}: {err}")


def batches(items: Iterable[Any], size: int) -> Iterator[List[Any]]:
    batch: List[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def local_records(nlp, rows: Iterable[Row], maker: RecordMaker, *,
                  batch_size: int = DEFAULT_BATCH_SIZE, n_process: int = 1) -> Iterator[Record]:
    """The local engine: one record per row, in input order.

    With `n_process` 1, batch after batch through `annotate_batch` (the same
    function the Ray workers run). With more, through
    `nlp.pipe(n_process=...)`: the rows with an error skip the pipeline and
    their records are put back in their place (a doc that makes the pipeline
    itself raise then stops the job, where one process would give it an
    error record).
    """
    if n_process == 1:
        for batch in batches(rows, batch_size):
            yield from annotate_batch(nlp, batch, maker)
        return
    pending: Deque[Tuple[int, Row]] = deque()

    def texts() -> Iterator[Tuple[str, int]]:
        for seq, row in enumerate(rows):
            pending.append((seq, row))
            if row["error"] is None:
                yield row["text"], seq

    for doc, seq in nlp.pipe(texts(), as_tuples=True, batch_size=batch_size, n_process=n_process):
        while pending[0][0] != seq:
            _, row = pending.popleft()
            yield error_record(row["id"], row["error"])
        _, row = pending.popleft()
        yield maker.doc_record(row["id"], doc)
    for _, row in pending:
        yield error_record(row["id"], row["error"])


# ---------------------------------------------------------------- writing


class PartWriter:
    """Writes records to OUTPUT/part-NNNNN.jsonl (or .parquet), `part_size`
    records a part. Each part is written to a temporary file in the same
    folder and renamed into place (`os.replace`), so a part is either all
    there or not there: a job stopped at any point leaves only whole parts,
    and `done_ids` tells which rows they hold.
    """

    def __init__(self, path: Union[str, Path], fmt: str = "jsonl", part_size: int = DEFAULT_PART_SIZE):
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, not {fmt!r}")
        if part_size < 1:
            raise ValueError(f"part_size must be >= 1, not {part_size}")
        if fmt == "parquet":
            require_pyarrow()
        self.path = Path(path)
        self.fmt = fmt
        self.part_size = part_size
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"output {self.path} exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        other = [p.name for p in self.parts() if not p.name.endswith("." + fmt)]
        if other:
            raise ValueError(f"{self.path} holds parts of another format ({other[0]}); "
                             f"use --output-format {other[0].rsplit('.', 1)[1]} or another folder")
        for tmp in self.path.glob(TMP_PREFIX + "*"):  # left by a job that was killed
            tmp.unlink()
        existing = [int(p.name[len(PART_PREFIX):].split(".")[0]) for p in self.parts()]
        self.next_part = max(existing, default=-1) + 1
        self.buffer: List[Record] = []
        self.n_written = 0

    def parts(self) -> List[Path]:
        return sorted(p for p in self.path.glob(PART_PREFIX + "*") if p.suffix in (".jsonl", ".parquet"))

    def done_ids(self) -> Set[str]:
        """The ids of the records in the committed parts."""
        return {record["id"] for record in read_output(self.path, columns=["id"])}

    def add(self, record: Record) -> None:
        self.buffer.append(record)
        if len(self.buffer) >= self.part_size:
            self.commit()

    def commit(self) -> None:
        """Write the buffered records as the next part, atomically."""
        if not self.buffer:
            return
        name = f"{PART_PREFIX}{self.next_part:05d}.{self.fmt}"
        tmp = self.path / (TMP_PREFIX + name)
        if self.fmt == "jsonl":
            with open(tmp, "w", encoding="utf8") as f:
                for record in self.buffer:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        else:
            pa = require_pyarrow()
            table = pa.Table.from_pylist(self.buffer, schema=output_schema())
            pa.parquet.write_table(table, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, self.path / name)
        self.n_written += len(self.buffer)
        self.next_part += 1
        self.buffer = []


def output_schema():
    """The Arrow schema of the Parquet output."""
    pa = require_pyarrow()
    entity = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()),
                        ("text", pa.string()), ("probability", pa.float64())])
    return pa.schema([("id", pa.string()), ("entities", pa.list_(entity)),
                      ("alternatives", pa.list_(entity)), ("error", pa.string())])


def read_output(path: Union[str, Path], columns: Optional[List[str]] = None) -> Iterator[Record]:
    """The records of an output folder, part by part (committed parts only)."""
    for part in sorted(Path(path).glob(PART_PREFIX + "*")):
        if part.suffix == ".jsonl":
            with open(part, encoding="utf8") as f:
                for line in f:
                    record = json.loads(line)
                    yield {c: record[c] for c in columns} if columns else record
        elif part.suffix == ".parquet":
            pa = require_pyarrow()
            yield from pa.parquet.read_table(part, columns=columns).to_pylist()


# ---------------------------------------------------------------- the job


@dataclass
class Summary:
    """What a job did: rows written in this run, of which errors; rows skipped
    because an earlier run had written them; seconds in all, and until the
    first record came back (loading the pipeline, starting workers)."""

    written: int
    errors: int
    skipped: int
    seconds: float
    startup_seconds: float = 0.0

    @property
    def docs_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def annotate_corpus(
    model: Union[str, Path],
    input_path: Union[str, Path],
    output_path: Union[str, Path],
    *,
    engine: str = "local",
    input_format: Optional[str] = None,
    output_format: str = "jsonl",
    id_field: str = "id",
    text_field: str = "text",
    batch_size: int = DEFAULT_BATCH_SIZE,
    part_size: int = DEFAULT_PART_SIZE,
    threshold: Optional[float] = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    n_process: int = 1,
    workers: int = 1,
    address: Optional[str] = None,
    progress: bool = True,
    **ray_options: Any,
) -> Summary:
    """Annotate every row of `input_path` not yet in `output_path` with the
    pipeline `model`, and write the records in parts under `output_path`.

    engine (str): "local" (`nlp.pipe` in this process, `n_process` processes)
        or "ray" (a Ray Data actor pool of `workers`, on the cluster at
        `address` or on a local one; needs `spacy-rnn-ner[ray]`).
    Other arguments: see `python -m spacy_rnn_ner annotate --help`.
    RETURNS (Summary): Counts and time.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if batch_size < 1 or n_process < 1 or workers < 1:
        raise ValueError("batch_size, n_process and workers must be >= 1")
    fmt = input_format or guess_input_format(input_path)
    if fmt not in INPUT_FORMATS:
        raise ValueError(f"input format must be one of {INPUT_FORMATS}, not {fmt!r}")
    if not Path(input_path).is_file():
        raise FileNotFoundError(f"input file not found: {input_path}")
    if fmt == "parquet":
        require_pyarrow()
    writer = PartWriter(output_path, output_format, part_size)
    done = writer.done_ids()
    total = count_rows(input_path, fmt)
    rows = read_rows(input_path, fmt, id_field=id_field, text_field=text_field,
                     max_chars=max_chars, skip=done)
    start = time.perf_counter()
    if engine == "ray":
        from .annotate_ray import ray_records  # Ray is imported only here

        records = ray_records(model, rows, threshold=threshold, batch_size=batch_size,
                              workers=workers, address=address, **ray_options)
    else:
        if ray_options:
            raise TypeError(f"options for the ray engine only: {sorted(ray_options)}")
        nlp = load_pipeline(model, threshold)
        records = local_records(nlp, rows, RecordMaker.from_nlp(nlp),
                                batch_size=batch_size, n_process=n_process)
    errors = 0
    first: Optional[float] = None
    bar = _progress_bar(total, len(done), progress)
    try:
        for record in records:
            if first is None:
                first = time.perf_counter() - start
            writer.add(record)
            errors += record["error"] is not None
            bar.update(1)
    finally:
        # Whole records only reach the writer: keep them even if the job stops.
        writer.commit()
        bar.close()
    seconds = time.perf_counter() - start
    return Summary(writer.n_written, errors, len(done), seconds, seconds if first is None else first)


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    # tqdm shows docs/s and the ETA from the rate of this run.
    return tqdm(total=total, initial=initial, unit="doc", disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)
