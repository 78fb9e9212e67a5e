"""`spacy-rnn-ner.VocabEmbed.v1`: an embedding table over the words seen in
training, with one learned row for every other word.

A hash embedding (spaCy's `HashEmbed`) gives an unseen word the sum of rows
that other words trained, so at test time a new name looks like some
unrelated known word. Here an unseen word gets the unknown-word row, which
training teaches by replacing known words by it at rate `unk_rate` (Lample et
al. 2016), so the model learns to tag unknown words from their characters,
shape and context. The vocabulary (the sorted attribute hashes) is built from
the training docs by `build_vocab` and saved with the model.
"""
from typing import Callable, Iterable, List, Optional, Tuple

import numpy
from spacy.attrs import intify_attr
from spacy.tokens import Doc
from thinc.api import Model, registry, uniform_init
from thinc.types import Floats2d, Ints1d, Ints2d

from ..config_types import NonNegativeInt, PositiveInt, Rate

KEYS_ATTR = "vocab_keys"
# Not "dropout_rate": spaCy sets that on every layer to [training] dropout.
UNK_RATE_ATTR = "unk_rate"


@registry.layers("spacy-rnn-ner.VocabEmbed.v1")
def VocabEmbed(
    nO: PositiveInt,
    nV: PositiveInt,
    *,
    attr: str = "NORM",
    column: NonNegativeInt = 0,
    min_freq: PositiveInt = 1,
    unk_rate: Rate = 0.0,
) -> Model[Ints2d, Floats2d]:
    """Map column `column` of the input (the hashes of the token attribute
    `attr`, as `FeatureExtractor` gives them) to vectors of width `nO`.

    nV (int): At most this many known words, the most frequent first; the
        table has nV + 1 rows, row 0 being the unknown word.
    attr (str): The token attribute the column holds, read by `build_vocab`.
    min_freq (int): Words seen fewer times in training are unknown.
    unk_rate (float): In training, the probability that a known word is
        replaced by the unknown word.
    """
    for name, value in (("nO", nO), ("nV", nV), ("min_freq", min_freq)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"VocabEmbed: {name} must be an integer >= 1, got {value!r}")
    if not 0.0 <= unk_rate < 1.0:
        raise ValueError(f"VocabEmbed: unk_rate must be in [0, 1), got {unk_rate!r}")
    if intify_attr(attr) is None:
        raise ValueError(f"VocabEmbed: unknown token attribute {attr!r}")
    return Model(
        "vocab_embed",
        forward,
        init=init,
        dims={"nO": nO, "nV": nV},
        params={"E": None},
        attrs={
            KEYS_ATTR: numpy.zeros((0,), dtype="uint64"),
            UNK_RATE_ATTR: unk_rate,
            "attr": attr,
            "column": column,
            "min_freq": min_freq,
        },
    )


def init(model: Model[Ints2d, Floats2d], X: Optional[Ints2d] = None, Y=None) -> None:
    shape = (model.get_dim("nV") + 1, model.get_dim("nO"))
    model.set_param("E", model.ops.asarray2f(uniform_init(model.ops, shape)))
    # A vocabulary from the initialization sample, unless one was built
    # already (the rnn_ner component builds it from all training docs).
    if X is not None and model.attrs[KEYS_ATTR].shape[0] == 0:
        set_vocab(model, model.ops.to_numpy(X[:, model.attrs["column"]]))


def build_vocab(model: Model, docs: Iterable[Doc]) -> int:
    """Set the vocabulary of a VocabEmbed layer from `docs`: the values of
    its attribute seen at least `min_freq` times, at most `nV` of them (the
    most frequent; ties broken by hash, so the result is deterministic).
    Returns the vocabulary size."""
    attr_id = intify_attr(model.attrs["attr"])
    chunks = [doc.to_array([attr_id]).ravel() for doc in docs if len(doc)]
    ids = numpy.concatenate(chunks) if chunks else numpy.zeros((0,), dtype="uint64")
    return set_vocab(model, ids)


def set_vocab(model: Model, ids: numpy.ndarray) -> int:
    """Set the vocabulary from the attribute hashes `ids` of all training
    tokens (see `build_vocab`). Returns the vocabulary size."""
    keys, counts = numpy.unique(numpy.asarray(ids, dtype="uint64"), return_counts=True)
    keep = counts >= model.attrs["min_freq"]
    keys, counts = keys[keep], counts[keep]
    # Most frequent first; lexsort's last key is the primary one.
    order = numpy.lexsort((keys, -counts))[: model.get_dim("nV")]
    model.attrs[KEYS_ATTR] = numpy.sort(keys[order])
    return int(len(order))


def vocab_layers(model: Model) -> List[Model]:
    """The VocabEmbed layers in `model`."""
    return [node for node in model.walk() if node.name == "vocab_embed"]


def lookup_rows(model: Model, ids: Ints1d) -> Ints1d:
    """Table rows of `ids`: 1 + the position in the vocabulary, 0 if unknown."""
    xp = model.ops.xp
    keys = model.ops.asarray(model.attrs[KEYS_ATTR], dtype="uint64")
    if keys.shape[0] == 0:
        return model.ops.alloc1i(ids.shape[0])
    ids = ids.astype("uint64")
    pos = xp.searchsorted(keys, ids)
    found = keys[xp.minimum(pos, keys.shape[0] - 1)] == ids
    return xp.where(found, pos + 1, 0).astype("int32")


def forward(model: Model[Ints2d, Floats2d], X: Ints2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    E = model.get_param("E")
    rows = lookup_rows(model, X[:, model.attrs["column"]])
    rate = model.attrs[UNK_RATE_ATTR]
    if is_train and rate > 0.0 and rows.shape[0]:
        drop = model.ops.xp.random.uniform(0.0, 1.0, rows.shape) < rate
        rows = model.ops.xp.where(drop, 0, rows).astype("int32")
    output = E[rows]

    def backprop(dY: Floats2d) -> Ints2d:
        dE = model.ops.alloc2f(*E.shape)
        model.ops.scatter_add(dE, rows, dY)
        model.inc_grad("E", dE)
        # Integer inputs get no gradient; zeros of their dtype, as HashEmbed.
        return model.ops.alloc(X.shape, dtype=X.dtype)

    return output, backprop
