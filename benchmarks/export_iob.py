"""Write the entities of a DocBin as a CoNLL-style IOB file (`word X X TAG`
per token, a blank line after each doc), the input `spacy convert -c ner`
reads. project.yml's `example-data` makes IOB files of the bundled corpus
with it, so the project runs before a user points it at their own files.

    python benchmarks/export_iob.py corpus/train.spacy /tmp/train.iob
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import spacy
from spacy.tokens import DocBin


def export(src: Path, dst: Path) -> int:
    """RETURNS (int): the number of docs written."""
    docs = list(DocBin().from_disk(src).get_docs(spacy.blank("xx").vocab))
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("w", encoding="utf8") as out:
        for doc in docs:
            for token in doc:
                if token.is_space:
                    continue  # the format has no whitespace tokens
                tag = f"{token.ent_iob_}-{token.ent_type_}" if token.ent_type_ else "O"
                out.write(f"{token.text} X X {tag}\n")
            out.write("\n")
    return len(docs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="DocBin (.spacy) with entities")
    parser.add_argument("dst", type=Path, help="IOB file to write")
    args = parser.parse_args(argv)
    n = export(args.src, args.dst)
    print(f"wrote {n} docs to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
