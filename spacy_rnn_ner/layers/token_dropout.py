"""`spacy-rnn-ner.TokenDropout.v1`: word dropout. In training, each token's
whole vector is zeroed with probability `rate`, so the model learns to tag
words whose embedding says nothing (unseen words, hash collisions) from the
other features, as replacing words by an unknown-word symbol does (Lample et
al. 2016). No rescaling: a dropped word looks like an unknown one."""
from typing import Callable, Tuple

from thinc.api import Model, registry
from thinc.types import Floats2d

from ..config_types import Rate

# Not "dropout_rate": spaCy sets that attribute on every layer to the
# [training] dropout on each update, which would override this rate.
RATE_ATTR = "token_dropout_rate"


@registry.layers("spacy-rnn-ner.TokenDropout.v1")
def TokenDropout(rate: Rate = 0.0) -> Model[Floats2d, Floats2d]:
    """Zero whole rows (tokens) with probability `rate` in training."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"TokenDropout: rate must be in [0, 1), got {rate!r}")
    return Model("token_dropout", forward, attrs={RATE_ATTR: rate})


def forward(model: Model[Floats2d, Floats2d], X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    rate = model.attrs[RATE_ATTR]
    if not is_train or rate == 0.0 or X.shape[0] == 0:
        return X, lambda dY: dY
    ops = model.ops
    keep = (ops.xp.random.uniform(0.0, 1.0, (X.shape[0], 1)) >= rate).astype(X.dtype)
    return X * keep, lambda dY: dY * keep
