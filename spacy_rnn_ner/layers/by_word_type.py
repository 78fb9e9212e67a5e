"""Run a token embedding once per word type when predicting.

A token's embedding (hashed attributes, word table, static vectors,
character CNN and the maxout that mixes them) depends on the token's own
attributes only, not on its context. A batch of CoNLL-2003 text has about
one distinct word in five tokens, so out of training the embedding runs on
one doc of the batch's distinct words and its rows are gathered back to
the tokens: the same vectors for a fifth of the work. In training the
embedding runs per token as before, since dropout and word dropout draw a
mask per token.

Two tokens are one type when their ORTH (the text, which fixes every
lexeme attribute: PREFIX, SUFFIX, SHAPE, LOWER, ...) and every token-level
attribute the embedding reads (NORM, which tokenizer exceptions set per
token) are equal.
"""
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import numpy
from spacy import attrs as spacy_attrs
from spacy.attrs import intify_attr
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

InT = List[Doc]
OutT = List[Floats2d]

# Attributes of the lexeme (the same for every token of one ORTH).
LEXEME_ATTRS = frozenset(
    getattr(spacy_attrs, name)
    for name in (
        "ORTH", "LOWER", "SHAPE", "PREFIX", "SUFFIX", "LENGTH", "LANG", "ID",
        "IS_ALPHA", "IS_ASCII", "IS_DIGIT", "IS_LOWER", "IS_PUNCT", "IS_SPACE",
        "IS_TITLE", "IS_UPPER", "LIKE_URL", "LIKE_NUM", "LIKE_EMAIL", "IS_STOP",
        "IS_BRACKET", "IS_QUOTE", "IS_LEFT_PUNCT", "IS_RIGHT_PUNCT", "IS_CURRENCY",
    )
)
# Token-level attributes that `Doc.from_array` sets on the doc of types.
TOKEN_ATTRS = frozenset(getattr(spacy_attrs, name) for name in ("NORM", "LEMMA", "TAG", "POS"))


def by_word_type(embed: Model[InT, OutT], attrs: Sequence[str]) -> Model[InT, OutT]:
    """The node `embed` (same name, layers, dims and init, so that saved
    models load either way) with a forward pass that, out of training, runs
    once per distinct word of the batch.

    embed (Model[List[Doc], List[Floats2d]]): An embedding whose output for
        a token depends only on that token's attributes `attrs` and its text.
    attrs (Sequence[str]): The token attributes the embedding reads, e.g.
        ["NORM", "PREFIX", "SUFFIX", "SHAPE"]. With one that is neither a
        lexeme attribute nor one of NORM, LEMMA, TAG, POS, the embedding runs
        per token also when predicting.
    """
    ids = [intify_attr(attr) for attr in attrs]
    if any(i not in LEXEME_ATTRS | TOKEN_ATTRS for i in ids):
        token_attrs: Optional[List[int]] = None
    else:
        token_attrs = sorted({i for i in ids if i in TOKEN_ATTRS})
    return Model(
        embed.name,
        partial(forward, inner=embed._func, token_attrs=token_attrs),
        init=embed.init,
        layers=embed.layers,
        dims={name: embed.maybe_get_dim(name) for name in embed.dim_names},
        attrs=dict(embed.attrs),
        refs={name: embed.get_ref(name) for name in embed.ref_names},
    )


def forward(
    model: Model[InT, OutT],
    docs: InT,
    is_train: bool,
    *,
    inner: Callable,
    token_attrs: Optional[List[int]],
) -> Tuple[OutT, Callable]:
    if is_train or token_attrs is None:
        return inner(model, docs, is_train)
    ops = model.ops

    def backprop(d_output: OutT) -> InT:
        raise ValueError("by_word_type: no backward pass after a forward pass with is_train=False")

    if sum(len(doc) for doc in docs) == 0:
        return [ops.alloc2f(0, model.get_dim("nO")) for _ in docs], backprop
    types_doc, inverse = word_types(docs, token_attrs)
    (vectors,), _ = inner(model, [types_doc], is_train)
    rows = vectors[ops.asarray(inverse, dtype="i")]
    output = ops.unflatten(rows, ops.asarray1i([len(doc) for doc in docs]))
    return output, backprop


def word_types(docs: InT, token_attrs: Sequence[int]) -> Tuple[Doc, numpy.ndarray]:
    """A doc with one token per distinct word type of `docs` (ORTH plus the
    `token_attrs`), and for every token of the docs the index of its type."""
    columns = [spacy_attrs.ORTH, *token_attrs]
    keys = numpy.concatenate([doc.to_array(columns) for doc in docs if len(doc)])
    keys = keys.reshape((-1, len(columns))).astype("uint64")
    # By ORTH alone (a fast 1d sort) where the token attributes follow from
    # it, as they do unless e.g. a tokenizer exception set a token's NORM.
    _, first, inverse = numpy.unique(keys[:, 0], return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    unique = keys[first]
    if len(columns) > 1 and not (keys[:, 1:] == unique[inverse, 1:]).all():
        unique, inverse = numpy.unique(keys, axis=0, return_inverse=True)
    vocab = next(doc.vocab for doc in docs if len(doc))
    strings = vocab.strings
    types_doc = Doc(vocab, words=[strings[int(orth)] for orth in unique[:, 0]],
                    spaces=[True] * len(unique))
    if token_attrs:
        types_doc.from_array(list(token_attrs), unique[:, 1:])
    return types_doc, inverse.reshape(-1)
