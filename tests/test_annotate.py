"""annotate: reading rows, records, atomic parts, resume, the local engine
and the command line. The Ray engine is in test_annotate_ray.py."""
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import spacy

import spacy_rnn_ner.annotate as annotate_mod
from spacy_rnn_ner.annotate import (
    PartWriter,
    RecordMaker,
    annotate_corpus,
    read_output,
    read_rows,
    require_pyarrow,
)
from spacy_rnn_ner.cli.annotate import annotate_cli

from .annotate_helpers import (
    TEXTS,
    assert_same_records,
    good_rows,
    train_tiny_pipeline,
    write_jsonl_with_bad_rows,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return train_tiny_pipeline(tmp_path_factory.mktemp("annotate") / "model")


@pytest.fixture(scope="module")
def nlp(model_path):
    return spacy.load(model_path)


def ids_of(path) -> list:
    return [record["id"] for record in read_output(path)]


def write_lines(path: Path, lines) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_text_rows_are_lines(tmp_path):
    path = write_lines(tmp_path / "in.txt", [b"Ada went home .", b"", b"caf\xc3\xa9 \r", b"\xff bad"])
    rows = list(read_rows(path, "text"))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["text"] for r in rows[:3]] == ["Ada went home .", "", "café "]
    assert rows[3]["text"] is None and rows[3]["error"].startswith("not UTF-8")


def test_malformed_jsonl_rows_give_errors(tmp_path):
    lines = [
        b'{"id": 7, "text": "Ada"}',
        b"   ",  # blank: not a row
        b'{"id": "a", "text": ',
        b'["not", "an", "object"]',
        b'{"text": "no id"}',
        b'{"id": true, "text": "bool id"}',
        b'{"id": "b"}',
        b'{"id": "c", "text": null}',
        b'{"id": "d", "text": {"nested": 1}}',
        b'{"id": "e", "text": "' + b"x" * 50 + b'"}',
        b'{"id": 7, "text": "again"}',
        b'{"id": "f", "text": "fine"}',
    ]
    rows = list(read_rows(write_lines(tmp_path / "in.jsonl", lines), "jsonl", max_chars=20))
    got = [(r["id"], r["text"], (r["error"] or "").split(":")[0]) for r in rows]
    assert got == [
        ("7", "Ada", ""),
        ("line:3", None, "bad JSON"),
        ("line:4", None, "row is a JSON list, not an object"),
        ("line:5", None, "missing id field 'id'"),
        ("line:6", None, "id must be a string or an integer, not bool"),
        ("b", None, "missing text field 'text'"),
        ("c", None, "missing text field 'text'"),
        ("d", None, "text must be a string, not dict"),
        ("e", None, "text too long"),
        ("7", None, "duplicate id '7'"),
        ("f", "fine", ""),
    ]
    skipped = list(read_rows(tmp_path / "in.jsonl", "jsonl", skip={"7", "line:3", "f"}))
    assert [r["id"] for r in skipped] == [r[0] for r in got[2:-1] if r[0] != "7"]


def test_parquet_rows(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (spacy-rnn-ner[ray])")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"doc_id": [1, None, 3], "body": ["Ada", "x", None]}), tmp_path / "in.parquet")
    rows = list(read_rows(tmp_path / "in.parquet", "parquet", id_field="doc_id", text_field="body"))
    assert [(r["id"], r["text"], r["error"]) for r in rows] == [
        ("1", "Ada", None),
        ("row:2", None, "missing id field 'doc_id'"),
        ("3", None, "missing text field 'body'"),
    ]
    with pytest.raises(ValueError, match="no column 'text'"):
        list(read_rows(tmp_path / "in.parquet", "parquet", id_field="doc_id"))


def test_parquet_without_pyarrow_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"spacy-rnn-ner\[ray\]"):
        require_pyarrow()
    with pytest.raises(ImportError, match="pyarrow"):
        PartWriter(tmp_path / "out", "parquet")


def test_records_match_the_pipeline(nlp):
    maker = RecordMaker.from_nlp(nlp)
    assert maker == RecordMaker(("rnn_ner",), False)
    for text in TEXTS:
        doc = nlp(text)
        record = maker.doc_record("x", doc)
        group = doc.spans["rnn_ner"]
        probs = dict(zip([(s.start_char, s.end_char, s.label_) for s in group], group.attrs["scores"]))
        assert record["alternatives"] is None and record["error"] is None
        assert [(e["start"], e["end"], e["label"], e["text"]) for e in record["entities"]] == [
            (e.start_char, e.end_char, e.label_, e.text) for e in doc.ents]
        for ent in record["entities"]:
            assert text[ent["start"]:ent["end"]] == ent["text"]
            assert ent["probability"] == pytest.approx(float(probs[ent["start"], ent["end"], ent["label"]]))
    assert any(maker.doc_record("x", nlp(t))["entities"] for t in TEXTS)


def test_recall_mode_lists_alternatives(model_path, tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good_rows(6)))
    annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / "out", threshold=0.02, progress=False)
    records = list(read_output(tmp_path / "out"))
    assert any(r["alternatives"] for r in records)
    for record in records:
        ents = {(e["start"], e["end"], e["label"]) for e in record["entities"]}
        for alt in record["alternatives"]:
            assert alt["probability"] >= 0.02 - 1e-6
            assert (alt["start"], alt["end"], alt["label"]) not in ents
    with pytest.raises(ValueError, match="threshold must be in"):
        annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / "out2", threshold=1.5, progress=False)


def test_local_engine_one_record_per_row(model_path, nlp, tmp_path, capsys):
    ids = write_jsonl_with_bad_rows(tmp_path / "in.jsonl", 40)
    summary = annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / "out", part_size=16,
                              max_chars=1000, batch_size=8)
    assert "doc/s" in capsys.readouterr().err  # the progress bar
    assert ids_of(tmp_path / "out") == ids
    assert (summary.written, summary.errors, summary.skipped) == (45, 5, 0)
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == [
        "part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    records = {r["id"]: r for r in read_output(tmp_path / "out")}
    maker = RecordMaker.from_nlp(nlp)
    for row in good_rows(40):
        assert_same_records([records[row["id"]]], [maker.doc_record(row["id"], nlp(row["text"]))])
    bad = {"no-text", "int-text", "huge"} | {i for i in ids if i.startswith("line:")}
    assert len(bad) == 5 and {i for i, r in records.items() if r["error"]} == bad


def test_n_process_2_gives_the_same_output(model_path, tmp_path):
    write_jsonl_with_bad_rows(tmp_path / "in.jsonl", 30)
    for n_process in (1, 2):
        annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / f"out{n_process}", max_chars=1000,
                        batch_size=4, n_process=n_process, progress=False)
    assert_same_records(read_output(tmp_path / "out1"), read_output(tmp_path / "out2"))


def test_parquet_output_equals_jsonl_output(model_path, tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (spacy-rnn-ner[ray])")
    write_jsonl_with_bad_rows(tmp_path / "in.jsonl", 12)
    for fmt in ("jsonl", "parquet"):
        annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / fmt, output_format=fmt,
                        max_chars=1000, threshold=0.05, part_size=7, progress=False)
    assert list(read_output(tmp_path / "jsonl")) == list(read_output(tmp_path / "parquet"))
    with pytest.raises(ValueError, match="parts of another format"):
        PartWriter(tmp_path / "parquet", "jsonl")


def test_failed_commit_leaves_no_part(tmp_path):
    writer = PartWriter(tmp_path / "out", "jsonl", part_size=10)
    writer.add({"id": "a", "entities": [], "alternatives": None, "error": None})
    writer.add({"id": "b", "entities": [object()], "alternatives": None, "error": None})
    with pytest.raises(TypeError):
        writer.commit()
    assert writer.parts() == [] and list(read_output(tmp_path / "out")) == []
    assert PartWriter(tmp_path / "out").done_ids() == set()
    assert list((tmp_path / "out").iterdir()) == []  # the temporary file is cleaned up


def test_stopped_job_resumes_without_loss_or_doubles(model_path, tmp_path, monkeypatch):
    ids = write_jsonl_with_bad_rows(tmp_path / "in.jsonl", 40)
    annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / "clean", max_chars=1000, progress=False)
    real = annotate_mod.local_records

    def dies_after_23(*args, **kwargs):
        for n, record in enumerate(real(*args, **kwargs)):
            if n == 23:
                raise KeyboardInterrupt
            yield record

    monkeypatch.setattr(annotate_mod, "local_records", dies_after_23)
    with pytest.raises(KeyboardInterrupt):
        annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / "out", part_size=10,
                        max_chars=1000, progress=False)
    assert ids_of(tmp_path / "out") == ids[:23]  # whole records only: 2 full parts + the rest
    (tmp_path / "out" / ".tmp-part-00009.jsonl").write_text('{"id": "half-writ')  # a killed commit
    monkeypatch.setattr(annotate_mod, "local_records", real)
    summary = annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / "out", part_size=10,
                              max_chars=1000, progress=False)
    assert (summary.skipped, summary.written) == (23, len(ids) - 23)
    assert ids_of(tmp_path / "out") == ids
    assert_same_records(read_output(tmp_path / "out"), read_output(tmp_path / "clean"))
    again = annotate_corpus(model_path, tmp_path / "in.jsonl", tmp_path / "out", progress=False)
    assert (again.skipped, again.written) == (len(ids), 0)
    assert Counter(ids_of(tmp_path / "out")) == Counter(ids)


def test_command_line(model_path, tmp_path):
    write_lines(tmp_path / "in.txt", [t.encode() for t in TEXTS])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_rnn_ner", "annotate", str(model_path), str(tmp_path / "in.txt"),
         str(out), "--batch-size", "2", "--threshold", "0.5", "--no-progress"],
        capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(TEXTS)} records written" in proc.stdout
    records = list(read_output(out))
    assert [r["id"] for r in records] == [str(i) for i in range(1, len(TEXTS) + 1)]
    assert all(r["alternatives"] is not None for r in records)


def test_command_line_errors(model_path, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        annotate_cli([str(model_path), "in.txt", str(tmp_path / "o"), "--workers", "2"])
    assert exc.value.code == 2 and "--engine ray" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        annotate_cli([str(model_path), "in.txt", str(tmp_path / "o"), "--engine", "ray", "--n-process", "2"])
    assert annotate_cli([str(model_path), str(tmp_path / "missing.txt"), str(tmp_path / "o")]) == 1
    assert "input file not found" in capsys.readouterr().err


def test_core_package_does_not_import_ray():
    code = ("import sys, spacy_rnn_ner, spacy_rnn_ner.annotate, spacy_rnn_ner.__main__; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


def test_benchmark_reads_conll_documents(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_annotate", REPO / "benchmarks" / "annotate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    iob = tmp_path / "test.iob"
    iob.write_text("-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n"
                   "German JJ I-NP I-MISC\n\n-DOCSTART- -X- -X- O\n\nPeter NNP I-NP I-PER\n")
    assert bench.conll_documents(iob) == ["EU rejects German", "Peter"]
    bench.write_corpus(["a", "b"], 3, tmp_path / "c.jsonl")
    assert [r["id"] for r in read_rows(tmp_path / "c.jsonl", "jsonl")] == ["d0", "d1", "d2"]


def test_ray_engine_without_ray_says_how_to_install(model_path, tmp_path, monkeypatch, capsys):
    (tmp_path / "in.txt").write_text("Ada went to Paris .\n")
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "spacy_rnn_ner.annotate_ray", raising=False)
    assert annotate_cli([str(model_path), str(tmp_path / "in.txt"), str(tmp_path / "out"), "--engine", "ray"]) == 1
    assert "pip install 'spacy-rnn-ner[ray]'" in capsys.readouterr().err
