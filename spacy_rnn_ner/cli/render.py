"""`python -m spacy_rnn_ner displacy MODEL DATA.spacy OUTPUT_DIR [--limit 25]`:
render the pipeline's entities on the texts of a DocBin to HTML, as `spacy
evaluate --displacy-path` does for a component named `ner` (it skips
`rnn_ner`). Writes OUTPUT_DIR/entities.html (`doc.ents`) and, for every
`rnn_ner` span group, OUTPUT_DIR/spans-KEY.html."""
import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from spacy import displacy
from spacy.tokens import Doc

from ._util import CLIError, fail, load_pipeline_and_docs


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spacy_rnn_ner displacy",
        description="Render the entities a pipeline predicts on a DocBin's texts to HTML.",
    )
    parser.add_argument("model", help="pipeline directory or installed package")
    parser.add_argument("data", type=Path, help="DocBin (.spacy) whose texts to annotate")
    parser.add_argument("output_dir", type=Path, help="existing or new directory for the HTML")
    parser.add_argument("--limit", type=int, default=25, help="number of docs (default 25)")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be >= 1")
    return args


def displacy_cli(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command. RETURNS (int): the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        nlp, gold = load_pipeline_and_docs(args.model, args.data)
    except CLIError as e:
        return fail(str(e))
    texts = [doc.text for doc in gold[: args.limit]]
    docs: List[Doc] = list(nlp.pipe(texts))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    written = [_write(args.output_dir / "entities.html", displacy.render(docs, style="ent", page=True))]
    keys = [
        nlp.get_pipe(name).spans_key
        for name in nlp.pipe_names
        if nlp.get_pipe_meta(name).factory == "rnn_ner" and nlp.get_pipe(name).spans_key
    ]
    for key in keys:
        html = displacy.render(docs, style="span", page=True, options={"spans_key": key})
        written.append(_write(args.output_dir / f"spans-{key}.html", html))
    print(f"rendered {len(docs)} docs: " + ", ".join(str(p) for p in written))
    return 0


def _write(path: Path, html: str) -> Path:
    path.write_text(html, encoding="utf8")
    return path


