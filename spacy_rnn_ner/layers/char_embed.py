"""`spacy-rnn-ner.CharEmbed.v1`: embeddings of the first and last UTF-8 bytes
of each token, like spaCy's internal `_character_embed.CharacterEmbed`, with
two differences: the backward pass accumulates repeated bytes (spaCy's uses
`dE[idx] += d`, which with numpy fancy indexing keeps one update per repeated
index), and the table starts from small random values instead of zeros.
"""
from typing import Callable, List, Optional, Tuple

import numpy
from spacy.tokens import Doc
from thinc.api import Model, registry
from thinc.types import Floats2d

from ..config_types import PositiveInt

InT = List[Doc]
OutT = List[Floats2d]

N_BYTES = 256


@registry.layers("spacy-rnn-ner.CharEmbed.v1")
def CharEmbed(nM: PositiveInt = 16, nC: PositiveInt = 8) -> Model[InT, OutT]:
    """Per token, `nC` UTF-8 bytes (half from the start, half from the end of
    the word, padded in the middle) embedded in `nM` dimensions each and
    concatenated: output width nM * nC."""
    if nM < 1 or nC < 1:
        raise ValueError(f"CharEmbed needs nM >= 1 and nC >= 1, got nM={nM}, nC={nC}")
    return Model(
        "char_embed",
        forward,
        init=init,
        dims={"nM": nM, "nC": nC, "nO": nM * nC},
        params={"E": None},
    )


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    nC, nM = model.get_dim("nC"), model.get_dim("nM")
    E = numpy.random.uniform(-0.1, 0.1, (nC * N_BYTES, nM)).astype("f")
    model.set_param("E", model.ops.asarray2f(E))


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    ops = model.ops
    nC, nM = model.get_dim("nC"), model.get_dim("nM")
    E = model.get_param("E")
    lengths = [len(doc) for doc in docs]
    byte_ids = [doc.to_utf8_array(nr_char=nC) for doc in docs]
    ids = numpy.concatenate(byte_ids, axis=0) if docs else numpy.zeros((0, nC), dtype="uint8")
    # Row of (position c, byte b) in the flattened table: c * 256 + b.
    rows = ops.asarray(ids.astype("i") + numpy.arange(nC, dtype="i") * N_BYTES).reshape(-1)
    vectors = E[rows].reshape((len(ids), nC * nM))
    output = ops.unflatten(vectors, ops.asarray1i(lengths)) if docs else []

    def backprop(d_output: OutT) -> InT:
        d_vectors = ops.flatten(d_output).reshape((-1, nM))
        dE = ops.alloc2f(*E.shape)
        ops.scatter_add(dE, rows, d_vectors)
        model.inc_grad("E", dE)
        return []

    return output, backprop
