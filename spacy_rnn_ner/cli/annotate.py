"""`python -m spacy_rnn_ner annotate MODEL INPUT OUTPUT`: annotate a corpus
with a trained pipeline, locally or on a Ray cluster."""
import argparse
import sys
from typing import List, Optional

from ..annotate import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CHARS,
    DEFAULT_PART_SIZE,
    ENGINES,
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    annotate_corpus,
)

DESCRIPTION = """\
Annotate every row of INPUT (JSONL, Parquet, or plain text with one document
a line) with the pipeline MODEL and write one record a row (id, entities with
start/end char, label, text and probability, the alternatives in recall mode,
and an error for a row that could not be annotated) to the folder OUTPUT, in
parts each committed atomically. Run again on the same OUTPUT, it resumes:
rows whose id is already written are skipped."""


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m spacy_rnn_ner annotate", description=DESCRIPTION)
    p.add_argument("model", help="pipeline folder or package name (for Ray: valid on every node)")
    p.add_argument("input", help="input file (.jsonl, .parquet, else plain text)")
    p.add_argument("output", help="output folder (created; resumed if it holds parts)")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: nlp.pipe in this machine; ray: Ray Data actor pool (needs spacy-rnn-ner[ray])")
    p.add_argument("--address", default=None,
                   help="ray: cluster to join, e.g. 'auto' after `ray start --head`, or ray://HOST:10001; "
                        "default: start a local Ray")
    p.add_argument("--workers", type=int, default=None, help="ray: actors, one pipeline each (default 1)")
    p.add_argument("--n-process", type=int, default=None, help="local: processes for nlp.pipe (default 1)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="docs per nlp.pipe batch")
    p.add_argument("--threshold", type=float, default=None,
                   help="recall mode: also output every other span at least this probable (0 < t <= 1)")
    p.add_argument("--input-format", choices=INPUT_FORMATS, default=None, help="default: from INPUT's suffix")
    p.add_argument("--output-format", choices=OUTPUT_FORMATS, default="jsonl")
    p.add_argument("--id-field", default="id", help="JSONL field / Parquet column with the id")
    p.add_argument("--text-field", default="text", help="JSONL field / Parquet column with the text")
    p.add_argument("--part-size", type=int, default=DEFAULT_PART_SIZE, help="records per output part")
    p.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS,
                   help="longer texts become error records")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def annotate_cli(argv: Optional[List[str]] = None) -> int:
    """Parse `argv` (the arguments after `annotate`), run the job, print a
    summary. RETURNS (int): The exit status."""
    parser = make_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.engine == "local" and (args.address is not None or args.workers is not None):
        parser.error("--address and --workers are for --engine ray (locally, use --n-process)")
    if args.engine == "ray" and args.n_process is not None:
        parser.error("--n-process is for --engine local (on Ray, use --workers)")
    for name in ("workers", "n_process", "batch_size", "part_size", "max_chars"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    options = {"n_process": args.n_process or 1} if args.engine == "local" else {
        "workers": args.workers or 1, "address": args.address}
    try:
        summary = annotate_corpus(
            args.model, args.input, args.output,
            engine=args.engine,
            input_format=args.input_format,
            output_format=args.output_format,
            id_field=args.id_field,
            text_field=args.text_field,
            batch_size=args.batch_size,
            part_size=args.part_size,
            threshold=args.threshold,
            max_chars=args.max_chars,
            progress=not args.no_progress,
            **options,
        )
    except (ImportError, ValueError, OSError) as err:
        print(f"annotate: error: {err}", file=sys.stderr)
        return 1
    print(f"{summary.written} records written to {args.output} ({summary.errors} errors), "
          f"{summary.skipped} already there; {summary.seconds:.1f} s, "
          f"{summary.docs_per_second:.1f} docs/s")
    return 0
