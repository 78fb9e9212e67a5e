"""`with_padded` that pads a list of sequences by length bucket.

thinc's `with_padded` pads a list to (longest x n_items): one 5,000-token doc
among 199 short ones makes the RNN step through 200 x 5,000 positions. This
wrapper pads each length bucket (`batching.length_buckets`) on its own, so the
memory follows the tokens wherever the encoder runs: in the `rnn_ner`
component, in a shared `tok2vec` component that runs it on the whole batch,
or called directly. The RNN never reads padding, so every sequence gets the
same output as in an unbucketed batch, or alone.

The node has the name, dims and (single) child of thinc's `with_padded`, so
that models saved with `with_padded` load into it, and it into them.
"""
from typing import Callable, List, Optional, Tuple, TypeVar, Union, cast

from thinc.api import Model, registry
from thinc.layers.with_padded import forward as padded_forward
from thinc.layers.with_padded import init as padded_init
from thinc.types import Floats2d, Padded

from ..batching import length_buckets

InT = TypeVar("InT", bound=Union[Padded, List[Floats2d]])


@registry.layers("spacy-rnn-ner.with_padded_buckets.v1")
def with_padded_buckets(layer: Model[Padded, Padded]) -> Model[InT, InT]:
    """Run a `Padded -> Padded` layer on a list of 2d arrays, one length
    bucket at a time, and return the outputs in the order of the inputs.
    Other inputs (Padded, Ragged, 3d arrays, padded tuples) are passed as
    thinc's `with_padded` passes them.

    layer (Model[Padded, Padded]): A layer whose outputs for a sequence do
        not depend on the other sequences of the batch (e.g. an RNN).
    """
    return Model(
        f"with_padded({layer.name})",
        forward,
        init=padded_init,
        layers=[layer],
        dims={name: layer.maybe_get_dim(name) for name in layer.dim_names},
    )


def forward(model: Model[InT, InT], Xseq: InT, is_train: bool) -> Tuple[InT, Callable]:
    if not isinstance(Xseq, list):
        return padded_forward(model, Xseq, is_train)
    layer: Model[Padded, Padded] = model.layers[0]
    ops = model.ops
    Xs = cast(List[Floats2d], Xseq)
    # Empty items are in no bucket: their outputs and gradients are empty.
    Ys: List[Floats2d] = [ops.alloc2f(0, layer.get_dim("nO")) for _ in Xs]
    callbacks: List[Tuple[List[int], Callable]] = []
    for bucket in length_buckets([len(X) for X in Xs]):
        Yp, get_dXp = layer(ops.list2padded([Xs[i] for i in bucket]), is_train)
        for i, Y in zip(bucket, ops.padded2list(Yp)):
            Ys[i] = Y
        del Yp
        # Out of training, keep no bucket's state: one bucket at a time.
        if is_train:
            callbacks.append((bucket, get_dXp))
        del get_dXp
    shapes = [X.shape for X in Xs]

    def backprop(dYs: List[Floats2d]) -> List[Floats2d]:
        if not is_train:
            raise ValueError("with_padded: no backward pass after a forward pass with is_train=False")
        dXs: List[Optional[Floats2d]] = [None] * len(dYs)
        for bucket, get_dXp in callbacks:
            dXp = get_dXp(ops.list2padded([dYs[i] for i in bucket]))
            for i, dX in zip(bucket, ops.padded2list(dXp)):
                dXs[i] = dX
        return [
            dX if dX is not None else ops.alloc2f(*shape)
            for dX, shape in zip(dXs, shapes)
        ]

    return cast(InT, Ys), backprop
