"""The C kernels' bindings (`layers/_cpu_kernels.pyx`) and how the layer picks
its compute path: products and buffer checks of the bindings, a fuzz test
(bad shapes, dtypes, strides, huge and negative sizes, overflowing step
tables: a Python exception every time, never a crash), the warning when the
kernels are missing, and the input-width check every path shares."""
import os
import platform
import subprocess
import sys
from typing import Any, Callable, Dict, List, Tuple

import numpy
import pytest
from thinc.api import NumpyOps
from thinc.types import Padded

from spacy_rnn_ner.layers import cells
from spacy_rnn_ner.layers.rnn import RNN

OPS = NumpyOps()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _needs_packed():
    if not cells.kernels_available(numpy, numpy.dtype("float32")):
        pytest.skip("C kernels not built")
    if not cells._cpu_kernels.HAS_PACKED:
        pytest.skip("this CPU has no AVX-512F: the packed kernels are not used")
    return cells


@pytest.mark.skipif(
    sys.platform != "linux"
    or platform.python_implementation() != "CPython"
    or os.environ.get(cells.KERNELS_ENV) == "0",
    reason="the C kernels are only required where CI builds them",
)
def test_fused_kernels_are_built():
    """`pip install` builds the kernels where a compiler exists; without them
    the layer falls back to the slower ufunc path, so a broken build must
    fail the tests."""
    assert cells._cpu_kernels is not None
    assert cells.kernels_available(numpy, numpy.float32)
    assert cells.backend_info()["path"] in ("avx512", "c")


def test_backend_info_names_the_path_in_use(monkeypatch):
    """`backend_info` follows what the layer would do: AVX-512 whole steps,
    C gate kernels with numpy's matmul, or numpy alone. CI sets
    SPACY_RNN_NER_EXPECT_PATH for its builds with fast paths compiled out."""
    info = cells.backend_info()
    assert info["path"] in ("avx512", "c", "numpy")
    expected = os.environ.get("SPACY_RNN_NER_EXPECT_PATH")
    if expected:
        assert info["path"] == expected, info
    assert (info["path"] == "avx512") == cells.packed_available(numpy, numpy.float32)
    if cells._cpu_kernels is not None:
        assert info["kernels"] == cells._cpu_kernels.__file__
        monkeypatch.setattr(cells, "USE_PACKED", False)
        assert cells.backend_info()["path"] == "c"
    monkeypatch.setattr(cells, "_cpu_kernels", None)
    assert cells.backend_info()["path"] == "numpy"


def _import_without_kernels(monkeypatch, installed, local=None):
    """Re-run the kernels' import as if the extension failed to import, with
    `installed` as the kernels of an installed copy and `local` as a build
    next to the module (or None)."""
    import spacy_rnn_ner.layers as package

    monkeypatch.delenv(cells.KERNELS_ENV, raising=False)
    if hasattr(package, "_cpu_kernels"):
        monkeypatch.delattr(package, "_cpu_kernels")
    monkeypatch.setitem(sys.modules, "spacy_rnn_ner.layers._cpu_kernels", None)
    monkeypatch.setattr(cells, "_installed_kernels", lambda: installed)
    monkeypatch.setattr(cells, "_local_kernels", lambda: local)
    with pytest.warns(cells.KernelsWarning) as record:
        module, reason = cells._import_kernels()
    assert module is None and len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message and "slower numpy path" in message
    return message


def test_missing_kernels_warn_once(monkeypatch):
    message = _import_without_kernels(monkeypatch, None)
    assert "not built" in message and "C compiler" in message


def test_broken_build_warns(monkeypatch):
    message = _import_without_kernels(monkeypatch, None, "/src/_cpu_kernels.so")
    assert "/src/_cpu_kernels.so failed to load" in message


def test_shadowed_install_warns(monkeypatch):
    """Running from a checkout after `pip install .`: the source tree has no
    build, the installed package has one."""
    message = _import_without_kernels(monkeypatch, "/site-packages/_cpu_kernels.so")
    assert "shadows the installed package" in message and "/site-packages/" in message


def test_kernels_switched_off_by_environment():
    """SPACY_RNN_NER_KERNELS=0 runs the numpy path, without a warning."""
    code = (
        "import warnings; warnings.simplefilter('error');"
        "from spacy_rnn_ner.layers import cells; print(cells.backend_info()['path'])"
    )
    env = {**os.environ, cells.KERNELS_ENV: "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "numpy"


def _paths() -> List[str]:
    paths = ["numpy"]
    if cells._cpu_kernels is not None:
        paths.append("c")
        if cells.packed_available(numpy, numpy.float32):
            paths.append("avx512")
    return paths


@pytest.mark.parametrize("path", ["avx512", "c", "numpy"])
@pytest.mark.parametrize("width", [3, 7])
@pytest.mark.parametrize("is_train", [False, True])
def test_wrong_input_width_raises_on_every_path(monkeypatch, path, width, is_train):
    """An input narrower or wider than nI is refused alike on every path (the
    whole-step kernels once read it with the wrong row length)."""
    if path not in _paths():
        pytest.skip(f"the {path} path does not run here")
    if path == "c":
        monkeypatch.setattr(cells, "USE_PACKED", False)
    elif path == "numpy":
        monkeypatch.setattr(cells, "_cpu_kernels", None)
    model = RNN(nO=8, nI=5, cell="lstm")
    model.initialize()
    X = numpy.ones((4, 2, width), dtype="f")
    Xp = Padded(X, OPS.asarray1i([2, 2, 2, 1]), OPS.asarray1i([4, 3]), OPS.asarray1i([0, 1]))
    with pytest.raises(ValueError, match="input width"):
        model(Xp, is_train=is_train)


@pytest.mark.parametrize(
    "M,K,N", [(0, 4, 5), (1, 1, 1), (7, 13, 64), (13, 33, 70), (64, 128, 128), (6, 200, 130), (9, 8, 100)]
)
@pytest.mark.parametrize("accumulate", [False, True])
def test_packed_matrix_product(M, K, N, accumulate):
    """`PackedMatrix.matmul` is a matrix product for any shape: row tiles and
    column panels with tails, empty batches, out = or out +=."""
    _needs_packed()
    rng = numpy.random.RandomState(0)
    B = rng.normal(size=(K, N)).astype("f")
    A = rng.normal(size=(M, K)).astype("f")
    packed = cells.PackedMatrix(numpy, B)
    out = rng.normal(size=(M, N)).astype("f")
    expected = A @ B + (out if accumulate else 0.0)
    packed.matmul(A, out, accumulate=accumulate)
    numpy.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "K,M,nX,nH",
    [(0, 8, 3, 4), (1, 1, 1, 1), (7, 13, 5, 70), (300, 24, 96, 128), (600, 70, 0, 33), (513, 16, 17, 0)],
)
@pytest.mark.parametrize("accumulate", [False, True])
def test_weight_gradient_kernel(K, M, nX, nH, accumulate):
    """`wgrad`: C (+)= A.T @ [X | H[prev]] for any shape (row blocks of 256,
    tiles of 6 x 64, with tails), rows of H gathered by prev with zeros where
    prev == K, A and H column blocks of wider arrays, X or H left out."""
    _needs_packed()
    rng = numpy.random.RandomState(0)
    A = rng.normal(size=(K, M + 3)).astype("f")[:, 1 : M + 1]
    X = rng.normal(size=(K, nX)).astype("f") if nX else None
    H = rng.normal(size=(K, 2 * nH + 1)).astype("f")[:, nH + 1 :] if nH else None
    prev = rng.randint(0, K + 1, size=K).astype("i")
    parts = [] if X is None else [X]
    if H is not None:
        H_prev = numpy.zeros((K, nH), dtype="f")
        H_prev[prev < K] = H[prev[prev < K]]
        parts.append(H_prev)
    C = rng.normal(size=(M, nX + nH)).astype("f")
    expected = A.T.astype("d") @ numpy.hstack(parts).astype("d") + (C if accumulate else 0.0)
    cells._cpu_kernels.wgrad(A, X, H, prev if H is not None else None, C, accumulate)
    numpy.testing.assert_allclose(C, expected, rtol=1e-4, atol=1e-3)


def test_packed_kernels_check_their_buffers():
    """The kernels refuse buffers of the wrong shape or dtype instead of
    reading past them."""
    _needs_packed()
    k = cells._cpu_kernels
    f = numpy.zeros
    with pytest.raises(ValueError, match="packed must be .* 192 floats"):
        k.gemm_packed(f((2, 3), "f"), f(10, "f"), f((2, 5), "f"), 2, 3, 5, False)
    with pytest.raises(ValueError, match="dtype mismatch, expected 'const float'"):
        k.pack_b(f((3, 5), "d"), f(3 * 64, "f"), 3, 5)
    packed = cells.step_pack(numpy, "lstm", f((8, 3), "f"), f((8, 2), "f"))
    X, H, b, c = f((4, 3), "f"), f((4, 2), "f"), f(8, "f"), f((4, 2), "f")
    steps = numpy.array([[0, 2, 0, 0], [2, 2, 0, 2]], dtype="int64")
    cells.run_steps("lstm", X, H, packed, b, None, steps, None, c, None)  # fine
    with pytest.raises(ValueError, match="outside"):
        cells.run_steps("lstm", X, H, packed, b, None, steps + 1, None, c, None)
    with pytest.raises(ValueError, match="bias must be .* 8 floats"):  # b
        cells.run_steps("lstm", X, H, packed, f(7, "f"), None, steps, None, c, None)
    with pytest.raises(ValueError, match="dtype mismatch, expected 'const int64_t'"):
        cells.run_steps("lstm", X, H, packed, b, None, steps.astype("i"), None, c, None)
    with pytest.raises(ValueError, match="packed must be"):  # X narrower than Wx
        cells.run_steps("lstm", X[:, :2].copy(), H, packed, b, None, steps, None, c, None)
    Wh = cells.PackedMatrix(numpy, f((8, 2), "f"))
    dH, dG, dc = f((4, 2), "f"), f((4, 8), "f"), f((4, 2), "f")
    cells.run_back_steps("lstm", steps, dH, dG, Wh, dG, c, c, None, None, dc)  # fine
    with pytest.raises(ValueError, match="outside"):
        cells.run_back_steps("lstm", steps + 1, dH, dG, Wh, dG, c, c, None, None, dc)
    with pytest.raises(ValueError, match=r"dc must be .*\(4, 2\)"):
        cells.run_back_steps("lstm", steps, dH, dG, Wh, dG, c, c, None, None, f((4, 3), "f"))
    with pytest.raises(ValueError, match="wrong number of dimensions"):
        cells.run_back_steps("lstm", steps, dH, dG, Wh, dG, c, c, None, None, f(7, "f"))
    with pytest.raises(ValueError, match="packed"):  # Wh packed for 4 gates, not 3
        cells.run_back_steps("gru", steps, dH, f((4, 6), "f"), Wh, f((4, 6), "f"), c, None, H, None, None)
    dG, prev, dW = f((4, 8), "f"), numpy.array([4, 0, 1, 4], dtype="i"), f((8, 5), "f")
    k.wgrad(dG, X, H, prev, dW, False)  # fine
    with pytest.raises(ValueError, match="outside"):
        k.wgrad(dG, X, H, prev + 1, dW, False)
    with pytest.raises(ValueError, match="dtype mismatch, expected 'const int32_t'"):
        k.wgrad(dG, X, H, prev.astype("int64"), dW, False)
    with pytest.raises(ValueError, match=r"C must be .*\(8, 5\)"):
        k.wgrad(dG, X, H, prev, f((8, 4), "f"), False)
    with pytest.raises(ValueError, match="dtype mismatch"):
        k.wgrad(dG.astype("d"), X, H, prev, dW, False)
    with pytest.raises(ValueError, match="contiguous"):
        k.wgrad(dG, X, H, prev, f((5, 8), "f").T, False)


def test_overflowing_sizes_raise():
    """Sizes whose products overflow once wrapped to small numbers and
    passed the checks (then the kernels wrote past the buffers)."""
    if cells._cpu_kernels is None:
        pytest.skip("C kernels not built")
    k = cells._cpu_kernels
    f = numpy.zeros
    with pytest.raises(ValueError):
        k.lstm_fwd(f((1, 8), "f"), f((1, 8), "f"), f((1, 2), "f"), f((1, 2), "f"),
                   f((1, 2), "f"), f((1, 2), "f"), 2**62, 0, 2)
    with pytest.raises(ValueError):
        k.lstm_fwd(f((1, 8), "f"), f((1, 8), "f"), f((1, 2), "f"), f((1, 2), "f"),
                   f((1, 2), "f"), f((1, 2), "f"), 1, 0, 2**62)
    if cells.packed_available(numpy, numpy.float32):
        packed = cells.step_pack(numpy, "lstm", f((8, 3), "f"), f((8, 2), "f"))
        X, H, b, c = f((4, 3), "f"), f((4, 2), "f"), f(8, "f"), f((4, 2), "f")
        for step in ([2**62, 2**62, 0, 0], [1, 2**63 - 1, 0, 0], [0, 1, 2**63 - 1, 1]):
            with pytest.raises(ValueError, match="outside"):
                cells.run_steps("lstm", X, H, packed, b, None, numpy.array([step], "int64"), None, c, None)


# --- Fuzz: every binding, every argument made wrong -------------------------


def _valid_calls(k) -> List[Tuple[str, Tuple, Tuple[int, ...]]]:
    """(binding, valid arguments, indices of the arguments the binding
    writes) for every binding of module `k`."""
    rng = numpy.random.RandomState(0)

    def f(*shape):
        return rng.uniform(-1, 1, size=shape).astype("f")

    n, n_prev, H, N, nI = 3, 2, 2, 4, 3
    calls = [
        ("lstm_fwd", (f(n, 4 * H), f(n_prev, 4 * H), f(n_prev, H), f(n, H), f(n, H), f(n, H), n, n_prev, H)),
        ("lstm_bwd", (f(n, H), f(n, H), f(n, 4 * H), f(n_prev, H), f(n, H), f(n, 4 * H), f(n_prev, H), n, n_prev, H)),
        ("gru_fwd", (f(n, 3 * H), f(n_prev, 3 * H), f(H), f(n_prev, H), f(n, H), f(n, H), n, n_prev, H)),
        ("gru_bwd", (f(n, H), f(n, 3 * H), f(n, H), f(n_prev, H), f(n, 3 * H), f(n, 3 * H), f(n_prev, H), n, n_prev, H)),
        ("elman_fwd", (f(n, H), f(n_prev, H), f(n, H), n, n_prev, H)),
        ("elman_bwd", (f(n, H), f(n, H), f(n, H), n, H)),
    ]
    if getattr(k, "HAS_PACKED", 0):
        steps = numpy.array([[0, 2, 0, 0], [2, 2, 0, 2]], dtype="int64")
        K, M, Nc = 3, 2, 5
        calls += [
            ("step_pack", (f(4 * H, nI), f(4 * H, H), f(16 * (nI + H) * 4), nI, H, 4, 16)),
            ("pack_b", (f(K, Nc), f(64 * K), K, Nc)),
            ("gemm_packed", (f(M, K), f(64 * K), f(M, Nc), M, K, Nc, True)),
            ("wgrad", (f(N, 8), f(N, nI), f(N, H), numpy.array([4, 0, 1, 4], "i"), f(8, nI + H), False)),
        ]
        for code, gates, units in ((k.CELL_ELMAN, 1, 64), (k.CELL_GRU, 3, 16), (k.CELL_LSTM, 4, 16)):
            GH = gates * H
            calls.append((
                "run_steps",
                (code, f(N, nI), f(N, H), f(units * (nI + H) * gates), f(GH), f(H), steps,
                 f(N, GH), f(N, H), f(N, H), N, nI, H),
            ))
            calls.append((
                "run_back_steps",
                (code, steps, f(N, H), f(N, GH), f(64 * GH), f(N, GH), f(N, H), f(N, H),
                 f(N, H), f(N, GH), f(N, H), N, H),
            ))
    return calls


# Arguments of the whole-step bindings that a cell ignores, by cell code.
_IGNORED: Dict[Tuple[str, int], Tuple[int, ...]] = {
    ("run_steps", 0): (5, 8, 9), ("run_steps", 1): (9,), ("run_steps", 2): (5,),
    ("run_back_steps", 0): (5, 6, 7, 9, 10), ("run_back_steps", 1): (7, 10),
    ("run_back_steps", 2): (8, 9),
}


def _wrong_values(name: str, args: Tuple, i: int) -> List[Tuple[str, Any]]:
    """Replacements for argument i of binding `name` that make the call
    invalid (labelled)."""
    value = args[i]
    if isinstance(value, bool) or (name.startswith("run_") and i in _IGNORED[name, args[0]]):
        return []
    if isinstance(value, int):
        if name.startswith("run_") and i == 0:  # the cell
            return [("cell -1", -1), ("cell 3", 3), ("cell 2**40", 2**40)]
        return [(f"{v}", v) for v in (-1, value + 1, 2**31, 2**62, 2**63 - 1, 2**63)] + [
            ("float", float(value)), ("None", None)
        ]
    if value.dtype == numpy.int64:  # a step table
        T = value.shape[0]
        bad = [[-1, 1, 0, 0], [0, 5, 0, 0], [2**62, 2**62, 0, 0], [0, 2**63 - 1, 0, 0],
               [2, 2, 2**63 - 1, 1], [2, 2, 0, 3], [0, 2, 1, 1], [3, 2, 2, 2], [0, 1, 0, -1]]
        out = [(f"step {row}", numpy.array([row], "int64")) for row in bad]
        return out + [
            ("steps int32", value.astype("int32")), ("steps (T, 3)", value[:, :3].copy()),
            ("steps 1-D", value.ravel()), ("steps float", value.astype("f")),
            ("steps Fortran", numpy.asfortranarray(value)) if T > 1 else ("steps None", None),
        ]
    if value.dtype == numpy.int32:  # wgrad's prev
        return [("prev K + 1", value + 1), ("prev -1", value - 5), ("prev int64", value.astype("int64")),
                ("prev float", value.astype("f")), ("prev short", value[:-1].copy()), ("prev 2-D", value[None])]
    out = [("float64", value.astype("d")), ("int32", value.astype("i")), ("list", value.tolist()),
           ("short", value[:-1].copy()), ("scalar", numpy.float32(1.0))]
    if value.ndim == 2:
        out += [("extra column", numpy.zeros((value.shape[0], value.shape[1] + 1), "f")),
                ("1-D", value.ravel()), ("3-D", value[None])]
        if value.shape[0] > 1 and value.shape[1] > 1:
            out.append(("Fortran order", numpy.asfortranarray(value)))
    else:
        out += [("2-D", value[None]), ("strided", numpy.zeros(2 * value.size, "f")[::2])]
    return out


def fuzz_main(kernels_file: str, n_random: int = 300) -> None:
    """Run in a subprocess (see the test below): prints each case before it
    runs, then "ACCEPTED <case>" for each invalid call the bindings let
    through, "DONE" at the end. A crash ends the output at its case."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_cpu_kernels", kernels_file)
    k = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(k)
    valid = _valid_calls(k)
    for name, args in valid:
        print(f"valid {name}", flush=True)
        getattr(k, name)(*args)
    for name, args in valid:
        for i, value in enumerate(args):
            wrong = _wrong_values(name, args, i)
            if wrong and not isinstance(value, (int, bool)) and value.flags.writeable:
                ro = value.copy()
                ro.setflags(write=False)
                wrong.append(("read-only", ro))
            for label, bad in wrong:
                case = f"{name} arg {i}: {label}"
                print(case, flush=True)
                call = list(args)
                call[i] = bad
                try:
                    getattr(k, name)(*call)
                except Exception:
                    continue
                # Read-only inputs are fine: only a written one must be refused.
                if label == "read-only" and _reads_only(name, i):
                    continue
                print(f"ACCEPTED {case}", flush=True)
    # Random arguments: an exception or a result, never a crash.
    rng = numpy.random.RandomState(1)
    sizes = [0, 1, 2, 3, 4, 5, 8, 16, -1, 2**62, 2**63 - 1]
    for r in range(n_random):
        name, args = valid[rng.randint(len(valid))]
        call = []
        for value in args:
            if isinstance(value, bool) or rng.rand() < 0.5:
                call.append(value)
            elif isinstance(value, int):
                call.append(int(rng.choice(sizes)))
            elif value.dtype == numpy.int64:
                call.append(rng.choice([0, 1, 2, 3, 4, 5, 2**62], size=(rng.randint(0, 4), 4)).astype("int64"))
            else:
                shape = tuple(rng.choice([0, 1, 2, 3, 4, 8, 16], size=value.ndim))
                call.append(numpy.ones(shape, dtype=value.dtype))
        print(f"random {r} {name}", flush=True)
        try:
            getattr(k, name)(*call)
        except Exception:
            pass
    print("DONE", flush=True)


# Arguments each binding only reads (a read-only array is fine there).
_WRITTEN: Dict[str, Tuple[int, ...]] = {
    "lstm_fwd": (0, 3, 4, 5), "lstm_bwd": (1, 5, 6), "gru_fwd": (0, 4, 5),
    "gru_bwd": (4, 5, 6), "elman_fwd": (2,), "elman_bwd": (2,), "step_pack": (2,),
    "pack_b": (1,), "gemm_packed": (2,), "wgrad": (4,), "run_steps": (2, 7, 8, 9),
    "run_back_steps": (2, 3, 9, 10),
}


def _reads_only(name: str, i: int) -> bool:
    return i not in _WRITTEN[name]


def test_bindings_never_crash():
    """Every binding, every argument made wrong in turn (dtype, shape,
    strides, read-only, huge, negative and overflowing sizes and step
    tables), then random arguments: a Python exception every time an
    argument is wrong, and never a crash (run in a subprocess, so that a
    segfault fails this test instead of killing pytest)."""
    if cells._cpu_kernels is None:
        pytest.skip("C kernels not built")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.test_kernels import fuzz_main; fuzz_main(sys.argv[2])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, ROOT, cells._cpu_kernels.__file__],
        capture_output=True, text=True, timeout=300,
    )
    lines = out.stdout.splitlines()
    assert out.returncode == 0, f"crashed ({out.returncode}) at {lines[-1:]}: {out.stderr[-2000:]}"
    assert lines and lines[-1] == "DONE", out.stdout[-2000:]
    accepted = [line for line in lines if line.startswith("ACCEPTED")]
    assert not accepted, accepted
    assert len(lines) > 200  # the cases ran
