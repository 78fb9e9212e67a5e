"""`spacy-rnn-ner.LockedDropout.v1`: variational ("locked") dropout for
sequences. In training, each sequence gets one dropout mask over the feature
columns, shared by all of its tokens, instead of a fresh mask per token
(Gal & Ghahramani 2016; Reimers & Gurevych 2017 measure +0.5-0.8 F on
CoNLL-2003 for BiLSTM-CRFs). A column a sequence loses is lost at every step,
so the RNN cannot route around the noise from one step to the next."""
from typing import Callable, List, Tuple

from thinc.api import Model, registry
from thinc.types import Floats2d

from ..config_types import Rate

InT = List[Floats2d]

# Not "dropout_rate": spaCy sets that attribute on every layer to the
# [training] dropout on each update, which would override this rate.
RATE_ATTR = "locked_dropout_rate"


@registry.layers("spacy-rnn-ner.LockedDropout.v1")
def LockedDropout(rate: Rate = 0.0) -> Model[InT, InT]:
    """Zero each sequence's feature columns with probability `rate` in
    training (one mask per sequence), scaling the kept ones by 1 / (1 - rate)."""
    if isinstance(rate, bool) or not 0.0 <= rate < 1.0:
        raise ValueError(f"LockedDropout: rate must be in [0, 1), got {rate!r}")
    return Model("locked_dropout", forward, attrs={RATE_ATTR: float(rate)})


def forward(model: Model[InT, InT], Xs: InT, is_train: bool) -> Tuple[InT, Callable]:
    rate = model.attrs[RATE_ATTR]
    if not is_train or rate == 0.0 or not Xs:
        return Xs, lambda dYs: dYs
    width = Xs[0].shape[1]
    # One row of the mask per sequence; ops.get_dropout_mask scales kept units.
    masks = model.ops.get_dropout_mask((len(Xs), width), rate)
    Ys = [X * masks[i] for i, X in enumerate(Xs)]

    def backprop(dYs: InT) -> InT:
        return [dY * masks[i] for i, dY in enumerate(dYs)]

    return Ys, backprop
