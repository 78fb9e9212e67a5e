"""Model architectures registered with spaCy: the RNN encoder and the tagger."""
from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, Softmax_v2, chain, with_array, with_padded, zero_init
from thinc.types import Floats2d

from .layers.rnn import RNN


@registry.architectures("spacy-rnn-ner.RNNEncoder.v1")
def build_rnn_encoder(
    width: int = 128,
    depth: int = 1,
    cell: str = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.0,
) -> Model[List[Floats2d], List[Floats2d]]:
    """Contextualise token vectors with a recurrent network. Fits the `encode`
    slot of `spacy.Tok2Vec.v2`, also under a shared `tok2vec` component.

    width (int): Input and output width; with `bidirectional`, each direction
        has `width // 2` hidden units, so width must be even. Recommended 96-256.
    depth (int): Number of stacked recurrent layers. Recommended 1-2.
    cell (str): "lstm" (recommended), "gru", or "elman" (plain tanh RNN, which
        forgets early context on long inputs).
    bidirectional (bool): Read right to left as well and concatenate.
    dropout (float): Dropout on the output of each recurrent layer in training.
    """
    rnn = RNN(
        nO=width,
        nI=width,
        cell=cell,
        bidirectional=bidirectional,
        depth=depth,
        dropout=dropout,
    )
    return with_padded(rnn)


@registry.architectures("spacy-rnn-ner.RNNTagger.v1")
def build_rnn_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None
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
    return model
