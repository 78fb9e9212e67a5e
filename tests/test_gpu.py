"""GPU checks: the same layer code on cupy matches the CPU, and `spacy train
--gpu-id 0` works. Skipped where cupy or a GPU is missing; run them with
`python -m pytest tests/test_gpu.py --slow` on a machine with a GPU."""
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from thinc.api import Adam, NumpyOps, fix_random_seed
from thinc.types import Padded

from spacy_rnn_ner.layers.rnn import RNN


def _gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _gpu_available(), reason="needs cupy and a GPU"),
]
ROOT = Path(__file__).parent.parent


def _run(model, Xp, dY):
    for name in model.param_names:
        model.set_grad(name, model.ops.alloc(model.get_param(name).shape))
    Yp, backprop = model(Xp, is_train=True)
    dXp = backprop(Padded(dY, Yp.size_at_t, Yp.lengths, Yp.indices))
    to_np = model.ops.to_numpy
    grads = {name: to_np(model.get_grad(name)) for name in model.param_names}
    return to_np(Yp.data), to_np(dXp.data), grads


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_gpu_matches_cpu(cell, bidirectional):
    from thinc.api import CupyOps

    fix_random_seed(0)
    cpu, gpu = NumpyOps(), CupyOps()
    rng = numpy.random.RandomState(0)
    seqs = [rng.normal(size=(n, 12)).astype("f") for n in (17, 5, 9, 1, 17)]
    model = RNN(nO=16, nI=12, cell=cell, bidirectional=bidirectional, depth=2)
    Xp_cpu = cpu.list2padded(seqs)
    model.initialize(X=Xp_cpu)
    dY = rng.normal(size=Xp_cpu.data.shape[:2] + (16,)).astype("f")
    Y_cpu, dX_cpu, g_cpu = _run(model, Xp_cpu, dY)
    model.to_gpu(0)
    assert isinstance(model.ops, CupyOps)
    Xp_gpu = gpu.list2padded([gpu.asarray(s) for s in seqs])
    Y_gpu, dX_gpu, g_gpu = _run(model, Xp_gpu, gpu.asarray(dY))
    numpy.testing.assert_allclose(Y_gpu, Y_cpu, rtol=1e-4, atol=1e-5)
    numpy.testing.assert_allclose(dX_gpu, dX_cpu, rtol=1e-3, atol=1e-4)
    for name in g_cpu:
        numpy.testing.assert_allclose(g_gpu[name], g_cpu[name], rtol=1e-3, atol=1e-4, err_msg=name)


def test_pipeline_on_gpu():
    import spacy
    from spacy.training import Example

    spacy.require_gpu(0)
    try:
        nlp = spacy.blank("en")
        nlp.add_pipe("rnn_ner")
        doc = nlp.make_doc("Ada Lovelace met Charles Babbage in London .")
        eg = Example.from_dict(doc, {"entities": [(0, 12, "PER"), (17, 32, "PER"), (36, 42, "LOC")]})
        optimizer = nlp.initialize(lambda: [eg])
        optimizer.learn_rate = 0.01
        for _ in range(40):
            nlp.update([eg], sgd=optimizer)
        pred = nlp(doc.text)
        assert [(e.text, e.label_) for e in pred.ents] == [
            ("Ada Lovelace", "PER"), ("Charles Babbage", "PER"), ("London", "LOC")
        ]
        assert list(nlp.pipe(["", "   ", "x"])) is not None
    finally:
        spacy.require_cpu()


@pytest.mark.parametrize("ensemble", [False, True])
def test_crf_pipeline_on_gpu(ensemble):
    """CRF tagger (alone or as an ensemble of two), character embeddings and
    entity probabilities on cupy give the CPU's entities and scores."""
    import spacy

    from .conftest import make_examples
    from .test_confidence import CRF_MODEL

    config = CRF_MODEL
    if ensemble:
        members = {"a": CRF_MODEL["model"], "b": CRF_MODEL["model"]}
        config = {"model": {"@architectures": "spacy-rnn-ner.EnsembleCRFTagger.v1", "*": members}}
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=config)
    examples = make_examples(nlp.vocab)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    texts = ["Ada Lovelace met Charles Babbage in London .", "Globex hired Alan in Rome ."]
    cpu_docs = list(nlp.pipe(texts))
    data = nlp.to_bytes()
    spacy.require_gpu(0)
    try:
        gpu_nlp = spacy.blank("en")
        gpu_nlp.add_pipe("rnn_ner", config=config)
        gpu_nlp.from_bytes(data)
        gpu_docs = list(gpu_nlp.pipe(texts))
        for cpu_doc, gpu_doc in zip(cpu_docs, gpu_docs):
            assert [(e.start, e.end, e.label_) for e in gpu_doc.ents] == [
                (e.start, e.end, e.label_) for e in cpu_doc.ents
            ]
            numpy.testing.assert_allclose(
                gpu_doc.spans["rnn_ner"].attrs["scores"],
                cpu_doc.spans["rnn_ner"].attrs["scores"],
                rtol=1e-3, atol=1e-4,
            )
        losses = gpu_nlp.update(make_examples(gpu_nlp.vocab), sgd=Adam(0.001))
        assert 0 <= losses["rnn_ner"] < float("inf")
    finally:
        spacy.require_cpu()


@pytest.mark.slow
def test_spacy_train_gpu(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "corpus" / "build.py"), "--out-dir", str(tmp_path)],
        check=True, capture_output=True,
    )
    cmd = [
        sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / "lstm.cfg"),
        "--output", str(tmp_path / "out"), "--gpu-id", "0",
        "--paths.train", str(tmp_path / "train.spacy"),
        "--paths.dev", str(tmp_path / "dev.spacy"),
        "--training.max_steps", "300", "--training.eval_frequency", "100",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0
    assert "Using GPU" in result.stdout
    assert (tmp_path / "out" / "model-best").exists()


def test_vocab_embed_gpu_matches_cpu():
    """VocabEmbed.v1's lookup, unknown row and scatter-add gradient on cupy."""
    import spacy
    from thinc.api import CupyOps
    from spacy.tokens import Doc

    from spacy_rnn_ner.layers.vocab_embed import VocabEmbed, build_vocab

    nlp = spacy.blank("en")
    docs = [Doc(nlp.vocab, words="Vincent met Jules and Vincent".split())]
    X = docs[0].to_array(["NORM"]).reshape(-1, 1).astype("uint64")
    X = numpy.concatenate([X, numpy.array([[12345]], dtype="uint64")])
    dY = numpy.random.default_rng(0).normal(size=(X.shape[0], 6)).astype("f")
    results = []
    for ops in (NumpyOps(), CupyOps()):
        fix_random_seed(0)
        layer = VocabEmbed(6, 10)
        layer.initialize()
        build_vocab(layer, docs)
        if isinstance(ops, CupyOps):
            layer.to_gpu(0)
        Y, backprop = layer(ops.asarray(X), is_train=False)
        backprop(ops.asarray(dY))
        results.append((ops.to_numpy(Y), ops.to_numpy(layer.get_grad("E"))))
    (Y_cpu, g_cpu), (Y_gpu, g_gpu) = results
    numpy.testing.assert_allclose(Y_gpu, Y_cpu)
    numpy.testing.assert_allclose(g_gpu, g_cpu, rtol=1e-5, atol=1e-6)
