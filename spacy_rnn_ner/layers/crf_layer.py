"""`spacy-rnn-ner.CRF.v1`: the parameters of a linear-chain CRF over the tags.

The layer passes the per-token emission scores through unchanged; it holds
the tag-transition, start and end scores, which the component's loss object
(`spacy_rnn_ner.losses.CRFTagLoss`) reads for training (forward algorithm,
`spacy_rnn_ner.crf`) and decoding (Viterbi), and whose gradients that loss
adds with `inc_grad`, as a layer's backprop would. Keeping them in a layer
puts them in the model tree, so they are saved, loaded and optimised with
the rest.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy

from thinc.api import Model, registry
from thinc.types import Floats2d

from ..config_types import PositiveInt

InT = List[Floats2d]


@registry.layers("spacy-rnn-ner.CRF.v1")
def CRF(nO: Optional[PositiveInt] = None) -> Model[InT, InT]:
    """Transition scores between `nO` tags (plus start and end scores)."""
    return Model(
        "crf",
        forward,
        init=init,
        dims={"nO": nO},
        params={"transitions": None, "start": None, "end": None},
    )


def init(model: Model[InT, InT], X: Optional[InT] = None, Y: Optional[InT] = None) -> None:
    if not model.has_dim("nO"):
        if Y is not None and len(Y):
            model.set_dim("nO", Y[0].shape[1])
        elif X is not None and len(X):
            model.set_dim("nO", X[0].shape[1])
    nO = model.get_dim("nO")
    # Zeros: the BILUO constraints are applied on top, and the emissions carry
    # the signal until the transitions learn something.
    model.set_param("transitions", model.ops.alloc2f(nO, nO))
    model.set_param("start", model.ops.alloc1f(nO))
    model.set_param("end", model.ops.alloc1f(nO))


def forward(model: Model[InT, InT], X: InT, is_train: bool) -> Tuple[InT, Callable]:
    return X, lambda dY: dY


def resize_crf(model: Model[InT, InT], rows: Sequence[Optional[int]]) -> Model[InT, InT]:
    """A CRF over `len(rows)` tags, where tag i keeps the scores of old tag
    rows[i] (zero scores where None). A trained layer is replaced by a new
    one, so that an optimizer doesn't apply moments of the old shape."""
    n_out = len(rows)
    if not model.has_param("transitions"):
        if model.has_dim("nO"):
            model.set_dim("nO", n_out, force=True)
        return model
    new_model = CRF(n_out)
    new_model.initialize()
    dst = [i for i, row in enumerate(rows) if row is not None]
    src = [rows[i] for i in dst]
    transitions = new_model.get_param("transitions")
    transitions[numpy.ix_(dst, dst)] = model.get_param("transitions")[numpy.ix_(src, src)]
    for name in ("start", "end"):
        new_model.get_param(name)[dst] = model.get_param(name)[src]
    return new_model
