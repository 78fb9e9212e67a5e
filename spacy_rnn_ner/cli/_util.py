"""What the subcommands share: error exits and loading a pipeline with a
DocBin of gold docs."""
import sys
from pathlib import Path
from typing import List, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin


class CLIError(Exception):
    """A user error: the command prints it and exits with status 1."""


def fail(message: str) -> int:
    """Print `error: message` to stderr. RETURNS (int): exit status 1."""
    print(f"error: {message}", file=sys.stderr)
    return 1


def load_pipeline_and_docs(model: str, data: Path) -> Tuple[Language, List[Doc]]:
    """Load the pipeline `model` and the docs of the DocBin `data` in its
    vocab. Raises CLIError, naming the file, if either cannot be read."""
    if not data.is_file():
        raise CLIError(f"data file not found: {data}")
    try:
        nlp = spacy.load(model)
    except OSError as e:
        raise CLIError(f"could not load the pipeline {model}: {e}") from e
    try:
        docs = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    except ValueError as e:
        raise CLIError(f"could not read {data} as a DocBin: {e}") from e
    return nlp, docs
