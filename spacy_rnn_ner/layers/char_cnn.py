"""`spacy-rnn-ner.CharCNN.v1`: a character-level word encoder. Every token's
characters (with begin/end-of-word markers) are embedded, a convolution over
windows of characters runs through a maxout layer, and the result is
max-pooled over the word (Ma & Hovy 2016; Chiu & Nichols 2016), once per
distinct token text of the batch. Unlike fixed
byte positions it sees every character of words up to `max_chars` long, so
unseen words with familiar pieces ("-burg", "Mc", "-ovic") get useful vectors.
"""
from typing import Callable, Dict, List, Optional, Tuple

import numpy
from spacy.tokens import Doc
from thinc.api import (
    HashEmbed,
    Maxout,
    Model,
    chain,
    expand_window,
    reduce_max,
    registry,
    with_array,
)
from thinc.types import Floats2d, Ragged

from ..config_types import IntAtLeast2, NonNegativeInt, PositiveInt

InT = List[Doc]
OutT = List[Floats2d]

# Code points used as begin- and end-of-word markers (control characters that
# whitespace-split tokens never contain).
BOW, EOW = 0x02, 0x03


@registry.layers("spacy-rnn-ner.CharCNN.v1")
def CharCNN(
    width: PositiveInt = 64,
    nM: PositiveInt = 32,
    rows: PositiveInt = 1000,
    window_size: NonNegativeInt = 1,
    max_chars: IntAtLeast2 = 20,
) -> Model[InT, OutT]:
    """Character CNN word vectors, output width `width`.

    width (int): Output width (filters of the convolution).
    nM (int): Character embedding width.
    rows (int): Rows of the hashed character table.
    window_size (int): Characters on each side of the window centre.
    max_chars (int): Longer tokens keep their first and last max_chars // 2.
    """
    for name, value, low in (("width", width, 1), ("nM", nM, 1), ("rows", rows, 1),
                             ("window_size", window_size, 0), ("max_chars", max_chars, 2)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"CharCNN: {name} must be an integer >= {low}, got {value!r}")
    encoder: Model[Ragged, Floats2d] = chain(
        with_array(HashEmbed(nM, rows, seed=13, dropout=0.0)),
        expand_window(window_size=window_size),
        with_array(Maxout(width, nM * (2 * window_size + 1), nP=2, normalize=False)),
        reduce_max(),
    )
    return Model(
        "char_cnn",
        forward,
        layers=[encoder],
        dims={"nO": width},
        attrs={"max_chars": max_chars},
        init=init,
    )


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    encoder = model.layers[0]
    # Every sublayer has its dimensions, so no sample data is needed.
    encoder.initialize()


def char_ids(docs: InT, max_chars: int) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Code points of every distinct token text of the docs, each word
    wrapped in BOW/EOW markers: (ids, lengths) with one length per distinct
    text, and for every token the index of its text."""
    half = max_chars // 2
    bow, eow = chr(BOW), chr(EOW)
    index: Dict[str, int] = {}
    inverse = numpy.fromiter(
        (index.setdefault(token.text, len(index)) for doc in docs for token in doc),
        dtype="int32",
    )
    texts = [bow + (t if len(t) <= max_chars else t[:half] + t[-half:]) + eow for t in index]
    lengths = numpy.fromiter((len(t) for t in texts), dtype="int32", count=len(texts))
    ids = numpy.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype("uint64")
    return ids, lengths, inverse


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    ops = model.ops
    encoder = model.layers[0]
    nO = model.get_dim("nO")
    doc_lengths = [len(doc) for doc in docs]
    n_tokens = sum(doc_lengths)
    if n_tokens == 0:
        return [ops.alloc2f(0, nO) for _ in docs], lambda d_output: []
    # Once per distinct text of the batch, gathered back to the tokens; the
    # gradients of a text's tokens are summed (scatter-add) for its row.
    ids, lengths, inverse = char_ids(docs, model.attrs["max_chars"])
    Xr = Ragged(ops.asarray(ids), ops.asarray1i(lengths))
    vectors, backprop_encoder = encoder(Xr, is_train)
    rows = ops.asarray1i(inverse)
    output = ops.unflatten(vectors[rows], ops.asarray1i(doc_lengths))

    def backprop(d_output: OutT) -> InT:
        d_vectors = ops.alloc2f(len(lengths), nO)
        ops.scatter_add(d_vectors, rows, ops.flatten(d_output))
        backprop_encoder(d_vectors)
        return []

    return output, backprop
