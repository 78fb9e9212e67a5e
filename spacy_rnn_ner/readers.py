"""Corpus readers for distillation: raw text as examples without any entity
annotation (which `rnn_ner.distill` learns from the teacher alone), and
several corpora read as one (gold data plus raw text).

JSONL (`{"text": ...}` per line) needs no reader of ours: spaCy's
`spacy.JsonlCorpus.v1` yields the same kind of examples.
"""
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.corpus import walk_corpus
from spacy.util import registry

from .config_types import NonNegativeInt

ReaderT = Callable[[Language], Iterable[Example]]


@registry.readers("spacy-rnn-ner.PlainTextCorpus.v1")
def create_plain_text_reader(
    path: Union[str, Path],
    min_length: NonNegativeInt = 0,
    max_length: NonNegativeInt = 0,
    limit: NonNegativeInt = 0,
) -> ReaderT:
    """Examples of plain text, one doc per non-blank line, their references
    without annotation.

    path (Union[str, Path]): A .txt file, or a directory of them.
    min_length (int): Skip docs with fewer tokens; 0 for no limit.
    max_length (int): Skip docs with more tokens; 0 for no limit.
    limit (int): Read at most this many docs; 0 for all.
    """
    return PlainTextCorpus(path, min_length=min_length, max_length=max_length, limit=limit)


class PlainTextCorpus:
    """Iterate over the lines of text files as examples without annotation."""

    def __init__(
        self, path: Union[str, Path], *, min_length: int = 0, max_length: int = 0, limit: int = 0
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"PlainTextCorpus: no such file or directory: {self.path}")
        self.min_length = min_length
        self.max_length = max_length
        self.limit = limit

    def __call__(self, nlp: Language) -> Iterator[Example]:
        n_docs = 0
        for loc in walk_corpus(self.path, ".txt"):
            with Path(loc).open(encoding="utf8") as lines:
                for line in lines:
                    text = line.rstrip("\r\n")
                    if not text.strip():
                        continue
                    doc = nlp.make_doc(text)
                    if len(doc) < self.min_length or 0 < self.max_length < len(doc):
                        continue
                    words = [token.text for token in doc]
                    spaces = [bool(token.whitespace_) for token in doc]
                    yield Example(doc, Doc(nlp.vocab, words=words, spaces=spaces))
                    n_docs += 1
                    if n_docs == self.limit:
                        return


@registry.readers("spacy-rnn-ner.ConcatCorpus.v1")
def create_concat_reader(*corpora: ReaderT) -> ReaderT:
    """The examples of every corpus, one corpus after the other (spaCy's
    training loop shuffles them), e.g. gold data and raw text.

    corpora (Callable[[Language], Iterable[Example]]): The readers.
    """
    if not corpora:
        raise ValueError("ConcatCorpus: needs at least one corpus")

    def read(nlp: Language) -> Iterator[Example]:
        for corpus in corpora:
            yield from corpus(nlp)

    return read
