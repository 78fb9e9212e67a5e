"""Model architectures registered with spaCy: the RNN encoder and the tagger.

The models they build run their dense layers' float32 products on numpy's
BLAS when on CPU (`layers/matmul_ops.py`)."""
from typing import Callable, List, Optional, Sequence

from spacy.ml.featureextractor import FeatureExtractor
from spacy.ml.staticvectors import StaticVectors
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    Dropout,
    HashEmbed,
    Linear,
    Maxout,
    Model,
    Softmax_v2,
    chain,
    concatenate,
    list2ragged,
    ragged2list,
    with_array,
    zero_init,
)
from thinc.types import Floats2d

from .config_types import (
    Cell,
    NonNegativeInt,
    PositiveInt,
    Rate,
    StrictBool,
    setting_error,
)
from .layers.by_word_type import by_word_type
from .layers.char_cnn import CharCNN
from .layers.char_embed import CharEmbed
from .layers.crf_layer import CRF, resize_crf
from .layers.locked_dropout import LockedDropout
from .layers.matmul_ops import use_numpy_matmul
from .layers.rnn import RNN
from .layers.token_dropout import TokenDropout
from .layers.vocab_embed import VocabEmbed
from .layers.with_padded_buckets import with_padded_buckets


@registry.architectures("spacy-rnn-ner.RNNEncoder.v1")
def build_rnn_encoder(
    width: PositiveInt = 128,
    depth: PositiveInt = 1,
    cell: Cell = "lstm",
    bidirectional: StrictBool = True,
    dropout: Rate = 0.0,
) -> Model[List[Floats2d], List[Floats2d]]:
    """Contextualise token vectors with a recurrent network. Fits the `encode`
    slot of `spacy.Tok2Vec.v2`, also under a shared `tok2vec` component.

    width (int): Output width; with `bidirectional`, each direction has
        `width // 2` hidden units, so width must be even. The input width is
        taken from the embeddings at initialization. Recommended 96-256.
    depth (int): Number of stacked recurrent layers. Recommended 1-2.
    cell (str): "lstm" (recommended), "gru", or "elman" (plain tanh RNN, which
        forgets early context on long inputs).
    bidirectional (bool): Read right to left as well and concatenate.
    dropout (float): Dropout on the output of each recurrent layer in training.
        The input vectors get `[training] dropout` (set by spaCy per update).
    """
    _check_encoder_width("spacy-rnn-ner.RNNEncoder.v1", width, bidirectional)
    rnn = RNN(
        nO=width,
        cell=cell,
        bidirectional=bidirectional,
        depth=depth,
        dropout=dropout,
    )
    # Dropout on the token vectors going in (embedding dropout): its rate is
    # the `[training] dropout` that spaCy sets on every update. The RNN pads
    # by length bucket, so that a long doc doesn't pad the short ones.
    model = chain(Dropout(0.0), with_padded_buckets(rnn))
    model.set_dim("nO", width)
    return model


@registry.architectures("spacy-rnn-ner.RNNEncoder.v2")
def build_rnn_encoder_v2(
    width: PositiveInt = 128,
    depth: PositiveInt = 1,
    cell: Cell = "lstm",
    bidirectional: StrictBool = True,
    dropout: Rate = 0.0,
) -> Model[List[Floats2d], List[Floats2d]]:
    """As `RNNEncoder.v1`, but with variational ("locked") dropout: one mask
    per document over the feature columns, shared by all of its tokens, on
    the input of every recurrent layer and on the encoder's output. v1's
    dropout draws a new mask per token and only after each layer.

    width (int): Output width; with `bidirectional`, each direction has
        `width // 2` hidden units, so width must be even. Recommended 96-256.
    depth (int): Number of stacked recurrent layers. Recommended 1-2.
    cell (str): "lstm" (recommended), "gru", or "elman".
    bidirectional (bool): Read right to left as well and concatenate.
    dropout (float): Locked dropout rate in training. Recommended 0.25-0.5.
        The input vectors also get `[training] dropout` (set by spaCy per
        update, a fresh mask per token).
    """
    _check_encoder_width("spacy-rnn-ner.RNNEncoder.v2", width, bidirectional)
    layers: List[Model] = [Dropout(0.0)]
    for _ in range(depth):
        rnn = RNN(nO=width, cell=cell, bidirectional=bidirectional, depth=1)
        layers += [LockedDropout(dropout), with_padded_buckets(rnn)]
    layers.append(LockedDropout(dropout))
    model = chain(*layers)
    model.set_dim("nO", width)
    return model


def _check_encoder_width(block: str, width: int, bidirectional: bool) -> None:
    if bidirectional and width % 2:
        raise setting_error(
            block,
            "width",
            f"width = {width} must be even with bidirectional = true "
            "(each direction has width / 2 units)",
        )


@registry.architectures("spacy-rnn-ner.RNNTagger.v1")
def build_rnn_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[PositiveInt] = None
) -> Model[List[Doc], List[Floats2d]]:
    """Score every token over the component's BILUO tags (softmax), as
    `spacy.Tagger.v2` does for part-of-speech tags.

    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors, e.g.
        `spacy.Tok2Vec.v2` with `spacy-rnn-ner.RNNEncoder.v1` as `encode`.
    nO (Optional[int]): Number of tags; inferred from the component if None.
    """
    output_layer = Softmax_v2(
        nO, tok2vec.maybe_get_dim("nO"), init_W=zero_init, normalize_outputs=True
    )
    softmax = with_array(output_layer)
    model = chain(tok2vec, softmax)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("softmax", output_layer)
    model.set_ref("output_layer", output_layer)
    model.attrs["resize_output"] = resize_tagger_output
    return use_numpy_matmul(model)


@registry.architectures("spacy-rnn-ner.RNNCRFTagger.v1")
def build_rnn_crf_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[PositiveInt] = None
) -> Model[List[Doc], List[Floats2d]]:
    """Per-token emission scores (a linear layer, no softmax) plus a
    linear-chain CRF over the tags: the component trains it with the CRF
    log-likelihood and decodes with Viterbi. Refs "tok2vec", "output_layer"
    and "crf".

    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors.
    nO (Optional[int]): Number of tags; inferred from the component if None.
    """
    output_layer = Linear(nO, tok2vec.maybe_get_dim("nO"), init_W=zero_init)
    crf = CRF(nO)
    model = chain(tok2vec, with_array(output_layer), crf)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    model.set_ref("crf", crf)
    model.attrs["resize_output"] = resize_tagger_output
    return use_numpy_matmul(model)


def resize_tagger_output(
    model: Model[List[Doc], List[Floats2d]],
    rows: Sequence[Optional[int]],
    *,
    new_bias: float = 0.0,
) -> Model[List[Doc], List[Floats2d]]:
    """`model.attrs["resize_output"]` of the taggers above, as spaCy's
    textcat and parser resize theirs: give the model `len(rows)` output tags.

    Unlike spaCy's `resize_output(model, new_nO)`, which appends, this takes
    a map: the tags are in sorted-label order, so a new label may land in the
    middle. Trained layers are replaced by new ones (new ids), so that an
    optimizer doesn't apply moments of the old shape to them.

    model (Model): A model built by `RNNTagger.v1` or `RNNCRFTagger.v1`.
    rows (Sequence[Optional[int]]): For each new output, the old output whose
        weights (and CRF scores) it keeps, or None for a new one: zero
        weights and `new_bias` as its bias.
    new_bias (float): The output bias of the new tags.
    RETURNS (Model): The model, resized in place.
    """
    n_out = len(rows)
    output = model.get_ref("output_layer")
    wrapper = model.layers[1]  # with_array(output_layer)
    if output.has_param("W"):
        output = _resized_linear(output, rows, new_bias)
        wrapper.layers[0] = output
        for ref in ("softmax", "output_layer"):
            if model.has_ref(ref):
                model.set_ref(ref, output)
    _update_nO(output, n_out)
    _update_nO(wrapper, n_out)
    if model.has_ref("crf"):
        crf = resize_crf(model.get_ref("crf"), rows)
        model.layers[2] = crf
        model.set_ref("crf", crf)
    _update_nO(model, n_out)
    return model


def _resized_linear(
    layer: Model[Floats2d, Floats2d], rows: Sequence[Optional[int]], new_bias: float
) -> Model[Floats2d, Floats2d]:
    """A copy of a trained layer with params W and b, with output i taking
    row rows[i] of them (zero weights and `new_bias` where None)."""
    dims = {name: layer.maybe_get_dim(name) for name in layer.dim_names}
    dims["nO"] = len(rows)
    new_layer: Model[Floats2d, Floats2d] = Model(
        layer.name,
        layer._func,
        dims=dims,
        params={name: None for name in layer.param_names},
        init=layer.init,
        attrs=dict(layer.attrs),
        ops=layer.ops,
    )
    dst = [i for i, row in enumerate(rows) if row is not None]
    src = [rows[i] for i in dst]
    for name in ("W", "b"):
        old = layer.get_param(name)
        param = layer.ops.alloc((len(rows),) + old.shape[1:], dtype=old.dtype)
        if name == "b":
            param[...] = new_bias
        param[dst] = old[src]
        new_layer.set_param(name, param)
    return new_layer


def _update_nO(node: Model, n_out: int) -> None:
    """Set `nO` where it was already set (unset, initialization infers it)."""
    if node.has_dim("nO"):
        node.set_dim("nO", n_out, force=True)


@registry.architectures("spacy-rnn-ner.CharMultiHashEmbed.v1")
def build_char_multi_hash_embed(
    width: PositiveInt,
    attrs: List[str],
    rows: List[PositiveInt],
    include_static_vectors: StrictBool = False,
    nM: PositiveInt = 16,
    nC: PositiveInt = 8,
) -> Model[List[Doc], List[Floats2d]]:
    """spaCy's `MultiHashEmbed` (hashed lexical attributes, optionally static
    vectors) concatenated with embeddings of each token's first and last
    UTF-8 bytes, mixed by a maxout layer. Fits the `embed` slot of
    `spacy.Tok2Vec.v2`.

    width (int): Output width. Recommended 96-256.
    attrs (List[str]): Token attributes to hash, e.g. ["NORM", "PREFIX", "SUFFIX", "SHAPE"].
    rows (List[int]): Hash table rows per attribute, e.g. [5000, 1000, 2500, 2500].
    include_static_vectors (bool): Also use the vocab's static vectors.
    nM (int): Dimensions per byte embedding. Recommended 8-32.
    nC (int): Bytes per token, half from each end. Recommended 4-10.
    """
    _check_rows("spacy-rnn-ner.CharMultiHashEmbed.v1", attrs, rows)
    multi_hash_embed = registry.get("architectures", "spacy.MultiHashEmbed.v2")
    hashed = multi_hash_embed(width, attrs, rows, include_static_vectors)
    chars = CharEmbed(nM=nM, nC=nC)
    mix = Maxout(width, width + nM * nC, nP=3, normalize=True, dropout=0.0)
    # Out of training, once per word type of the batch (same vectors).
    return use_numpy_matmul(by_word_type(chain(concatenate(hashed, chars), with_array(mix)), attrs))


@registry.architectures("spacy-rnn-ner.WordCharEmbed.v1")
def build_word_char_embed(
    width: PositiveInt,
    attrs: List[str],
    rows: List[PositiveInt],
    include_static_vectors: StrictBool = False,
    word_dropout: Rate = 0.0,
    char_width: PositiveInt = 64,
    char_nM: PositiveInt = 32,
    char_window: NonNegativeInt = 1,
) -> Model[List[Doc], List[Floats2d]]:
    """Hashed lexical attributes (as in spaCy's `MultiHashEmbed`), optionally
    static vectors, and a character CNN over every token's characters,
    mixed by a maxout layer. Fits the `embed` slot of `spacy.Tok2Vec.v2`.

    width (int): Output width, also the width of each hash table. Recommended 96-256.
    attrs (List[str]): Token attributes to hash, e.g. ["NORM", "PREFIX", "SUFFIX", "SHAPE"].
    rows (List[int]): Hash table rows per attribute.
    include_static_vectors (bool): Also use the vocab's static vectors.
    word_dropout (float): In training, the probability that a token's first
        attribute (the word, e.g. NORM) is dropped, so that the model learns
        to tag unseen words from their characters, affixes and shape.
    char_width (int): Output width of the character CNN.
    char_nM (int): Character embedding width.
    char_window (int): Characters on each side of the CNN window.
    """
    _check_rows("spacy-rnn-ner.WordCharEmbed.v1", attrs, rows)
    word = lambda n_rows: chain(  # noqa: E731
        HashEmbed(width, n_rows, column=0, seed=8, dropout=0.0), TokenDropout(word_dropout)
    )
    return _word_char_embed(
        word, width, attrs, rows, include_static_vectors, char_width, char_nM, char_window
    )


@registry.architectures("spacy-rnn-ner.WordCharEmbed.v2")
def build_word_char_embed_v2(
    width: PositiveInt,
    attrs: List[str],
    rows: List[PositiveInt],
    include_static_vectors: StrictBool = False,
    word_dropout: Rate = 0.0,
    char_width: PositiveInt = 64,
    char_nM: PositiveInt = 32,
    char_window: NonNegativeInt = 1,
    min_freq: PositiveInt = 1,
) -> Model[List[Doc], List[Floats2d]]:
    """As `WordCharEmbed.v1`, but the first attribute (the word) is looked up
    in a vocabulary of the words seen in training (`VocabEmbed.v1`) instead
    of hashed: a word never seen in training gets the learned unknown-word
    vector, not the rows of unrelated words it collides with. The component
    builds the vocabulary from all training docs at initialization.

    rows (List[int]): rows[0] is the largest vocabulary (most frequent words
        first); the others are hash table rows per attribute.
    word_dropout (float): In training, the probability that a known word is
        replaced by the unknown word.
    min_freq (int): Words seen fewer times in training are unknown.
    Other arguments as in v1.
    """
    _check_rows("spacy-rnn-ner.WordCharEmbed.v2", attrs, rows)
    word = lambda n_rows: VocabEmbed(  # noqa: E731
        width, n_rows, attr=attrs[0], column=0,
        min_freq=min_freq, unk_rate=word_dropout,
    )
    return _word_char_embed(
        word, width, attrs, rows, include_static_vectors, char_width, char_nM, char_window
    )


def _check_rows(block: str, attrs: List[str], rows: List[int]) -> None:
    if not attrs:
        raise setting_error(block, "attrs", "attrs is empty: give at least one token attribute")
    if len(rows) != len(attrs):
        raise setting_error(
            block,
            "rows",
            f"need one rows entry per attribute, got rows = {rows} for attrs = {attrs}",
        )


def _word_char_embed(
    word: Callable[[int], Model],
    width: int,
    attrs: List[str],
    rows: List[int],
    include_static_vectors: bool,
    char_width: int,
    char_nM: int,
    char_window: int,
) -> Model[List[Doc], List[Floats2d]]:
    # spaCy's MultiHashEmbed, built here rather than called, because the word
    # table (with its dropout) differs from the other attributes' tables.
    tables = [word(rows[0])]
    for i, n_rows in enumerate(rows[1:], start=1):
        # Same seeds as spaCy's MultiHashEmbed.
        tables.append(HashEmbed(width, n_rows, column=i, seed=8 + i, dropout=0.0))
    hashed = chain(FeatureExtractor(attrs), list2ragged(), with_array(concatenate(*tables)))
    n_in = width * len(attrs)
    if include_static_vectors:
        hashed = concatenate(hashed, StaticVectors(width, dropout=0.0))
        n_in += width
    chars = CharCNN(width=char_width, nM=char_nM, window_size=char_window)
    mix = Maxout(width, n_in + char_width, nP=3, normalize=True, dropout=0.0)
    embed = chain(concatenate(chain(hashed, ragged2list()), chars), with_array(mix))
    # Out of training, once per word type of the batch (same vectors).
    return use_numpy_matmul(by_word_type(embed, attrs))
