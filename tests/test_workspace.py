import threading

import numpy
import pytest

from spacy_rnn_ner.layers.rnn import RNN
from spacy_rnn_ner.layers.workspace import WORKSPACE, Workspace
from thinc.types import Padded


def test_take_reuses_given_buffers():
    ws = Workspace()
    a = ws.take(numpy, (4, 5), "f")
    assert a.shape == (4, 5) and a.dtype == numpy.float32
    base = a.base
    ws.give(a)
    assert ws.free_bytes == base.nbytes
    b = ws.take(numpy, (2, 3), "f", zero=True)  # smaller: same buffer, zeroed
    assert b.base is base and not b.any()
    assert ws.free_bytes == 0
    c = ws.take(numpy, (2, 3), "d")  # other dtype: a new buffer
    assert c.base is not base


def test_best_fit_and_size_limit():
    ws = Workspace(max_free_bytes=4 * 150)
    small, large = ws.take(numpy, (10,), "f"), ws.take(numpy, (100,), "f")
    ws.give(small, large)
    assert ws.take(numpy, (8,), "f").base is small.base
    ws.give(ws.take(numpy, (50,), "f"), ws.take(numpy, (60,), "f"))
    assert ws.free_bytes <= 4 * 150  # the smallest were dropped


def test_give_ignores_foreign_and_repeated_arrays():
    ws = Workspace()
    mine = numpy.arange(10.0, dtype="f")
    ws.give(mine, mine[:5], numpy.zeros((2, 2), "f"))
    assert ws.free_bytes == 0  # arrays it did not make are never reused
    a = ws.take(numpy, (3,), "f")
    ws.give(a, a)
    assert ws.free_bytes == a.base.nbytes


def test_threads_never_share_a_buffer():
    ws = Workspace()
    errors = []

    def work(value):
        for _ in range(200):
            a = ws.take(numpy, (64,), "f")
            a.fill(value)
            if not (a == value).all():  # pragma: no cover - the failure case
                errors.append(value)
            ws.give(a)

    threads = [threading.Thread(target=work, args=(v,)) for v in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_layer_gives_back_and_backprop_runs_once():
    model = RNN(nO=8, nI=3, cell="lstm")
    Xp = numpy.random.RandomState(0).normal(size=(5, 2, 3)).astype("f")
    Xp = Padded(Xp, numpy.array([2] * 5, "i"), numpy.array([5, 5], "i"), numpy.arange(2, dtype="i"))
    model.initialize(X=Xp)
    WORKSPACE.clear()
    Y1, backprop = model(Xp, is_train=True)
    dY = Padded(numpy.ones_like(Y1.data), Y1.size_at_t, Y1.lengths, Y1.indices)
    dX1 = backprop(dY).data.copy()
    assert WORKSPACE.free_bytes > 0
    with pytest.raises(ValueError, match="only be called once"):
        backprop(dY)
    # A second pass on reused buffers computes the same.
    Y2, backprop2 = model(Xp, is_train=True)
    numpy.testing.assert_array_equal(Y1.data, Y2.data)
    numpy.testing.assert_array_equal(backprop2(dY).data, dX1)
