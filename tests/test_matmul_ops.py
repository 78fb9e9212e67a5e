"""NumpyMatmulOps: numpy's product in thinc's gemm, for our models' layers."""
import numpy
import pytest
from numpy.testing import assert_allclose
from thinc.api import Linear, NumpyOps, chain, use_ops

from spacy_rnn_ner.architectures import build_rnn_crf_tagger
from spacy_rnn_ner.layers.matmul_ops import NumpyMatmulOps, use_numpy_matmul


@pytest.mark.parametrize("trans1", [False, True])
@pytest.mark.parametrize("trans2", [False, True])
@pytest.mark.parametrize("with_out", [False, True])
def test_gemm_matches_numpy_ops(trans1, trans2, with_out):
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(7, 5) if not trans1 else (5, 7)).astype("f")
    y = rng.normal(size=(5, 3) if not trans2 else (3, 5)).astype("f")
    want = NumpyOps().gemm(x, y, trans1=trans1, trans2=trans2)
    out = numpy.full((7, 3), numpy.nan, dtype="f") if with_out else None
    got = NumpyMatmulOps().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
    assert got.dtype == numpy.float32 and got.shape == (7, 3)
    assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if with_out:
        assert got is out


def test_gemm_other_dtypes_behave_as_numpy_ops():
    """float64 is left to thinc's gemm: the same result, or the same error."""
    x = numpy.ones((2, 3), dtype="float64")
    y = numpy.ones((3, 4), dtype="float64")
    try:
        want = NumpyOps().gemm(x, y)
    except Exception as error:
        with pytest.raises(type(error)):
            NumpyMatmulOps().gemm(x, y)
    else:
        assert_allclose(NumpyMatmulOps().gemm(x, y), want)


def test_use_numpy_matmul_only_replaces_plain_numpy_ops():
    model = use_numpy_matmul(chain(Linear(3, 2), Linear(2, 3)))
    assert all(type(node.ops) is NumpyMatmulOps for node in model.walk())

    class OtherOps(NumpyOps):
        pass

    with use_ops("numpy"):
        other = chain(Linear(3, 2), Linear(2, 3))
    for node in other.walk():
        node.ops = OtherOps()
    use_numpy_matmul(other)
    assert all(type(node.ops) is OtherOps for node in other.walk())


def test_tagger_layers_use_numpy_matmul():
    from spacy.util import registry

    tok2vec = registry.resolve({"t": {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {"@architectures": "spacy.MultiHashEmbed.v2", "width": 8, "attrs": ["NORM"],
                  "rows": [10], "include_static_vectors": False},
        "encode": {"@architectures": "spacy-rnn-ner.RNNEncoder.v1", "width": 8},
    }})["t"]
    model = build_rnn_crf_tagger(tok2vec)
    assert {type(node.ops) for node in model.walk()} == {NumpyMatmulOps}
