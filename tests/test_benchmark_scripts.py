"""Pure functions of the benchmark scripts (the runs themselves are not tests)."""
import importlib.util
import json
import re
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.util import load_config
from spacy.vectors import Vectors

ROOT = Path(__file__).resolve().parent.parent


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_add_cased_keys_points_cased_forms_at_the_row():
    glove = load_script("glove_vectors")
    nlp = spacy.blank("en")
    words = ["paris", "the", "new-york"]
    data = numpy.arange(6, dtype="f").reshape((3, 2))
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=words)
    added = glove.add_cased_keys(nlp.vocab, words)
    # Paris PARIS The THE New-York NEW-YORK (capitalize() of new-york == "New-york")
    assert added == 7
    for form, row in [("Paris", 0), ("PARIS", 0), ("THE", 1), ("New-York", 2), ("New-york", 2)]:
        numpy.testing.assert_array_equal(nlp.vocab.get_vector(form), data[row])
    assert nlp.vocab.vectors.shape == (3, 2)


def test_scoring_examples_give_gold_sentence_starts(tmp_path):
    from spacy.tokens import Doc, DocBin, Span

    conll03 = load_script("conll03")
    nlp = spacy.blank("en")
    ref = Doc(nlp.vocab, words=["Damien", "Flemming", "bowled", "."],
              sent_starts=[True, True, False, False])
    ref.ents = [Span(ref, 0, 1, "PER"), Span(ref, 1, 2, "PER")]
    DocBin(docs=[ref]).to_disk(tmp_path / "dev.spacy")
    (gold,) = conll03.scoring_examples(nlp, tmp_path / "dev.spacy", 0, "gold")
    (plain,) = conll03.scoring_examples(nlp, tmp_path / "dev.spacy", 0, "none")
    for eg in (gold, plain):
        assert [t.text for t in eg.predicted] == ["Damien", "Flemming", "bowled", "."]
        assert not eg.predicted.ents
        assert len(eg.reference.ents) == 2
    assert [t.is_sent_start for t in gold.predicted] == [True, True, False, False]
    assert not plain.predicted.has_annotation("SENT_START")
    with pytest.raises(ValueError, match="sents"):
        conll03.scoring_examples(nlp, tmp_path / "dev.spacy", 0, "parser")


def test_use_static_vectors_switches_every_setting(tmp_path):
    conll03 = load_script("conll03")
    nlp = spacy.blank("en")
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=numpy.ones((1, 4), "f"), keys=["a"])
    nlp.to_disk(tmp_path / "vectors")
    config = load_config(ROOT / "configs" / "conll03.cfg", interpolate=False)
    assert config["components"]["rnn_ner"]["model"]["tok2vec"]["embed"]["include_static_vectors"] is False
    conll03.use_static_vectors(config, str(tmp_path / "vectors"))
    assert config["components"]["rnn_ner"]["model"]["tok2vec"]["embed"]["include_static_vectors"] is True
    assert config["initialize"]["vectors"] == str(tmp_path / "vectors")
    with pytest.raises(SystemExit, match="no vocab"):
        conll03.use_static_vectors(config, str(tmp_path))
    config = load_config(ROOT / "configs" / "lstm.cfg", interpolate=False)
    config["components"]["rnn_ner"]["model"]["tok2vec"]["embed"].pop("include_static_vectors", None)
    with pytest.raises(SystemExit, match="include_static_vectors"):
        conll03.use_static_vectors(config, str(tmp_path / "vectors"))


def test_lstm_floor_runs_a_real_lstm():
    """The floor of benchmarks/lstm_floor.py must do an LSTM's work, not less:
    its forward equals a plain numpy LSTM (no bias) on the same weights."""
    from spacy_rnn_ner.layers import cells

    if not cells.kernels_available(numpy, numpy.dtype("float32")):
        pytest.skip("C kernels not built")
    floor = load_script("lstm_floor")
    from spacy_rnn_ner.layers import _cpu_kernels

    nI, nH, T, B = 5, 3, floor.LENGTH, floor.BATCH
    X = numpy.random.RandomState(0).uniform(-1, 1, (T * B, nI)).astype("f")
    runners, dirs = floor.floor_runners(numpy, _cpu_kernels, nI, nH, X)
    fwd, prepare = runners["fwd"]
    fwd(prepare())
    Wx, Wh = dirs[0]["Wx"], dirs[0]["Wh"]
    sig = lambda z: 1 / (1 + numpy.exp(-z))
    h, c = numpy.zeros((B, nH), "f"), numpy.zeros((B, nH), "f")
    for t in range(T):
        z = X[t * B : (t + 1) * B] @ Wx.T + h @ Wh.T
        i, f, o, g = sig(z[:, :nH]), sig(z[:, nH : 2 * nH]), sig(z[:, 2 * nH : 3 * nH]), numpy.tanh(z[:, 3 * nH :])
        c = f * c + i * g
        h = o * numpy.tanh(c)
        numpy.testing.assert_allclose(dirs[0]["H"][t * B : (t + 1) * B], h, atol=1e-5)
    fwdbwd, prepare = runners["fwdbwd"]
    fwdbwd(prepare())  # runs without error on the same buffers
    assert numpy.isfinite(dirs[1]["dG"]).all()


# --- conll03.py: seeds, medians and the report ----------------------------------


def test_spread_median_and_range():
    conll03 = load_script("conll03")
    assert conll03.spread([0.9, 0.7, 0.8]) == {"median": 0.8, "min": 0.7, "max": 0.9, "n": 3}
    # an even count: the mean of the two middle values
    assert conll03.spread([4, 1, 3, 2]) == {"median": 2.5, "min": 1, "max": 4, "n": 4}
    assert conll03.spread([0.5]) == {"median": 0.5, "min": 0.5, "max": 0.5, "n": 1}
    with pytest.raises(ValueError, match="seed"):
        conll03.spread([])


def fake_training(seed, f, steps, labels=("LOC", "ORG"), from_zero=True):
    """train.json and eval.json as the training and evaluation processes write
    them, with scores that depend on `f`; from_zero: an evaluation at step 0."""
    def scores(x):
        return {"ents_p": x + 0.01, "ents_r": x - 0.01, "ents_f": x,
                "per_type": {l: {"p": x + 0.02, "r": x - 0.02, "f": x - i / 100}
                             for i, l in enumerate(labels)},
                "scorer_words_per_s": 1000.0}

    curve = [{"step": 0, "minutes": 0.0, "dev_f": 0.0, "dev_score": 0.0, "best": True, "test_f": 0.0},
             {"step": steps // 2, "minutes": 5.0, "dev_f": f - 0.05, "dev_score": f - 0.05,
              "best": True, "test_f": f - 0.06},
             {"step": steps, "minutes": 10.0, "dev_f": f, "dev_score": f, "best": True,
              "test_f": f - 0.01, "final": True}][0 if from_zero else 1:]
    train = {"seed": seed, "train_minutes": 10.0, "steps": steps, "epochs": steps / 100,
             "words_per_s": 50.0 * steps, "best_step": steps, "best_dev_f": f,
             "stop_reason": "budget", "curve": curve}
    ev = {"dev": scores(f), "test": scores(f - 0.01), "eval_words_per_s": 2000.0,
          "size_mb": 3.0, "threads": "1"}
    return train, ev


def synthetic_report(conll03):
    rnn = {"name": "rnn_ner (conll03)", "dir": "rnn_ner-conll03", "source": "configs/conll03.cfg"}
    ner = {"name": "spaCy ner (efficiency)", "dir": "spacy_ner", "source": "python -m spacy ..."}
    trainings = []
    for seed, f_rnn, f_ner in [(0, 0.90, 0.85), (1, 0.86, 0.88), (2, 0.88, 0.87)]:
        trainings.append((rnn, seed, *fake_training(seed, f_rnn, 1000 + seed, from_zero=seed != 1)))
        trainings.append((ner, seed, *fake_training(seed, f_ner, 2000 + 10 * seed)))
    run = {"command": "python benchmarks/conll03.py --seeds 0 1 2", "budget_minutes": 10,
           "mode": "parallel", "threads_per_system": 1, "seeds": [0, 1, 2],
           "machine": {"cpu": "test CPU", "versions": {"spacy": "3.8.0"}, "loadavg": [1.0]}}
    return conll03.report_data(run, {}, trainings, "python benchmarks/conll03.py report")


def test_report_data_gives_medians_and_spread_per_system():
    conll03 = load_script("conll03")
    data = synthetic_report(conll03)
    rnn, ner = data["systems"]
    assert rnn["seeds"] == ner["seeds"] == [0, 1, 2]
    assert rnn["summary"]["dev_f"] == pytest.approx({"median": 0.88, "min": 0.86, "max": 0.90, "n": 3})
    assert ner["summary"]["test_f"]["median"] == pytest.approx(0.86)
    assert ner["summary"]["test_ORG_f"]["median"] == pytest.approx(0.85)
    assert rnn["summary"]["steps"] == {"median": 1001, "min": 1000, "max": 1002, "n": 3}
    assert not data["smoke"]


def test_report_renders_from_its_json_alone():
    conll03 = load_script("conll03")
    data = json.loads(json.dumps(synthetic_report(conll03)))
    md = conll03.render_md(data, "no matplotlib here")
    # the main table: a row per system with its number of seeds; medians in bold,
    # (min–max) after them: dev F, then test F (1 point below dev in fake_training)
    rnn = next(l for l in md.splitlines() if l.startswith("| rnn_ner (conll03) | 3 |"))
    ner = next(l for l in md.splitlines() if l.startswith("| spaCy ner (efficiency) | 3 |"))
    assert "| **88.00** (86.00–90.00) |" in rnn and "| **87.00** (85.00–89.00) |" in rnn
    assert "| **87.00** (85.00–88.00) |" in ner and "| **86.00** (84.00–87.00) |" in ner
    assert "| 1,001 |" in rnn  # median steps
    assert "seeds 0, 1, 2" in md
    assert "seed(s) only" not in md
    # one row per system and seed in the per-seed table
    per_seed = [l for l in md.splitlines() if l.startswith("| spaCy ner (efficiency) | ")
                and l.split(" | ")[1] in {"0", "1", "2"}]
    assert len(per_seed) == 3
    # the curve table (0.5 ... 10 min): median over seeds of model-best dev / test F,
    # "–" until every seed has one (rnn seed 1 has no evaluation at step 0)
    assert "| rnn_ner (conll03) | – | – | – | 83.0 / 82.0 | 83.0 / 82.0 | 88.0 / 87.0 |" in md
    assert "| spaCy ner (efficiency) | 0.0 / 0.0 | 0.0 / 0.0 | 0.0 / 0.0 | 82.0 / 81.0 |" in md


def test_report_with_one_seed_says_so():
    conll03 = load_script("conll03")
    rnn = {"name": "rnn_ner (lstm)", "dir": "rnn_ner-lstm", "source": "configs/lstm.cfg"}
    # run.json of an older conll03.py: package versions at the top of "machine"
    run = {"limit": 20, "budget_minutes": 1, "machine": {"spacy": "3.7.5"}}
    data = conll03.report_data(run, {}, [(rnn, 4, *fake_training(4, 0.5, 10))], "cmd")
    md = conll03.render_md(data, "none")
    assert "spaCy 3.7.5" in md
    assert data["smoke"] and "Smoke run" in md
    assert "1 seed(s) only" in md
    assert "**50.00** |" in md  # no range with one seed


def test_seeds_and_seed_options(tmp_path):
    conll03 = load_script("conll03")
    args = conll03.parse_args(["train", "--workdir", str(tmp_path)])
    assert args.seeds is None and args.budget_minutes == 60
    jobs = conll03.trained_jobs(args)
    assert [(s["dir"], seed, folder) for s, seed, folder in jobs][:2] == [
        ("rnn_ner-lstm", 0, "rnn_ner-lstm/seed0"), ("spacy_ner", 0, "spacy_ner/seed0")]
    assert len(jobs) == 6
    assert conll03.parse_args(["--seed", "7", "--workdir", str(tmp_path)]).seeds == [7]
    assert conll03.parse_args(["--seeds", "3", "1", "--workdir", str(tmp_path)]).seeds == [3, 1]
    for bad in (["--seed", "1", "--seeds", "2"], ["--seeds", "1", "1"]):
        with pytest.raises(SystemExit):
            conll03.parse_args(bad + ["--workdir", str(tmp_path)])


def test_trained_jobs_read_seeds_and_the_older_layout_from_run_json(tmp_path):
    conll03 = load_script("conll03")
    systems = [{"name": "spaCy ner (efficiency)", "dir": "spacy_ner", "config": "x", "source": "y"}]
    (tmp_path / "run.json").write_text(json.dumps({"seeds": [5, 6], "systems": systems}))
    args = conll03.parse_args(["report", "--workdir", str(tmp_path)])
    assert [f for _, _, f in conll03.trained_jobs(args)] == ["spacy_ner/seed5", "spacy_ner/seed6"]
    args = conll03.parse_args(["report", "--workdir", str(tmp_path), "--seeds", "6"])
    assert [f for _, _, f in conll03.trained_jobs(args)] == ["spacy_ner/seed6"]
    # run.json of a run before seeds existed: one model per system, no seed folder
    (tmp_path / "run.json").write_text(json.dumps({"seed": 3, "systems": systems}))
    args = conll03.parse_args(["report", "--workdir", str(tmp_path)])
    assert [(seed, f) for _, seed, f in conll03.trained_jobs(args)] == [(3, "spacy_ner")]


# --- _common.py: helpers shared by the scripts -----------------------------------


def test_common_thread_env_sets_every_thread_variable(monkeypatch):
    common = load_script("_common")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = common.thread_env(2, PYTHONHASHSEED="0")
    assert {env[v] for v in common.THREAD_VARS} == {"2"}
    assert env["SOMETHING_ELSE"] == "kept" and env["PYTHONHASHSEED"] == "0"
    with pytest.raises(ValueError):
        common.thread_vars(0)


def test_common_logger_prefixes_and_picks_the_stream(capsys):
    common = load_script("_common")
    common.logger("conll03", stdout=True)("hello")
    common.logger()("world")
    out, err = capsys.readouterr()
    assert re.fullmatch(r"\[conll03 \d\d:\d\d:\d\d\] hello\n", out)
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] world\n", err)


def test_common_machine_facts_and_versions():
    common = load_script("_common")
    facts = common.machine_facts(("spacy", "no-such-dist-for-sure"))
    assert facts["versions"] == {"spacy": spacy.__version__, "no-such-dist-for-sure": None}
    assert facts["cpu_count"] >= 1 and facts["python"].count(".") == 2
    json.dumps(facts)  # plain JSON


def test_common_json_files_have_no_nan(tmp_path):
    common = load_script("_common")
    common.write_json(tmp_path / "a" / "x.json", {"x": [float("nan"), 1.5], "y": (2,)})
    text = (tmp_path / "a" / "x.json").read_text()
    assert "NaN" not in text
    assert common.read_json(tmp_path / "a" / "x.json") == {"x": [None, 1.5], "y": [2]}
    assert common.repo_path("benchmarks") == ROOT / "benchmarks"
    assert common.show(ROOT / "benchmarks" / "x.py") == "benchmarks/x.py"
    assert common.command_line("conll03.py", ["--configs", "a b.cfg"]) == (
        "python benchmarks/conll03.py --configs 'a b.cfg'")


@pytest.mark.parametrize("name", ["calibration", "speed", "lstm_floor", "glove_vectors", "conll03", "demo",
                                  "blas_threads", "doc_consistency", "generalisation",
                                  "profile_pipeline", "pipeline_speed"])
def test_scripts_load_with_the_shared_helpers(name):
    module = load_script(name)
    assert module._common.REPO == ROOT


def test_common_rnn_path_switches_and_restores():
    from spacy_rnn_ner.layers import backend_info, backends

    common = load_script("speed")._common
    picked = backend_info()["path"]
    for path in backends.available():
        with common.rnn_path(path):
            assert backend_info()["path"] == path
        assert backend_info()["path"] == picked
    with pytest.raises(ValueError, match="does not run here"):
        with common.rnn_path("tpu"):
            pass


def test_gemm_rounds_give_medians_of_ratios():
    gemm = load_script("gemm")
    seen = []

    def task(words):
        def run():
            seen.append(words)
            return words
        return run

    res = gemm.rounds_of({"avx512": task(10), "c": task(20)}, rounds=3, calls=2)
    assert len(seen) == 12
    for clock in ("wall", "cpu"):
        assert set(res[clock]) == {"avx512", "c"}
        assert res[clock]["avx512"]["ratio"] == 1.0
        assert len(res[clock]["c"]["rounds"]) == 3 and res[clock]["c"]["words_per_s"] > 0


def test_speed_renders_our_paths_side_by_side():
    speed = load_script("speed")
    row = {"threads": 1, "mode": "fwd", "cell": "lstm", "bi": True, "nI": 96, "nH": 128,
           "lengths": "variable", "tokens_per_s": {"ours": 300.0, "ours_c": 200.0, "ours_numpy": 100.0,
                                                    "torch": 250.0},
           "contended": {"ours": False, "ours_c": False, "ours_numpy": False, "torch": False}}
    text = "\n".join(speed.render_paths([{"ours_path": "avx512"}], [row]))
    assert "avx512 tok/s" in text and "c tok/s" in text and "numpy tok/s" in text
    assert "1.20" in text and "0.80" in text and "0.40" in text
    assert speed.render_paths([{"ours_path": "numpy"}], [row]) == []


def _speed_row(lengths, mode, tps, cpu_tps, contended=False):
    return {"threads": 1, "mode": mode, "cell": "lstm", "bi": True, "nI": 96, "nH": 128,
            "lengths": lengths, "tokens_per_s": tps, "cpu_tokens_per_s": cpu_tps,
            "contended": {s: contended for s in tps}}


def test_speed_targets_summarise_each_path_over_torch():
    """Per path, mode and lengths: median and minimum of ours/torch across the
    cases, by wall and CPU time, and how many reach the path's target."""
    speed = load_script("speed")
    workers = [{"ours_path": "avx512"}]
    rows = [
        _speed_row("equal", "fwd", {"ours": 110.0, "ours_c": 70.0, "ours_numpy": 60.0, "torch": 100.0},
                   {"ours": 120.0, "ours_c": 90.0, "ours_numpy": 60.0, "torch": 100.0}),
        _speed_row("variable", "fwd", {"ours": 90.0, "ours_c": 85.0, "ours_numpy": 50.0, "torch": 100.0},
                   {"ours": 100.0, "ours_c": 85.0, "ours_numpy": 50.0, "torch": 100.0}, contended=True),
    ]
    got = {(e["path"], e["lengths"]): e for e in speed.target_rows(workers, rows) if e["mode"] == "fwd"}
    assert set(got) == {(p, k) for p in ("avx512", "c", "numpy") for k in ("equal", "variable", "all")}
    c_all = got[("c", "all")]
    assert c_all["target"] == 0.8 and c_all["cases"] == 2
    assert c_all["wall"]["median"] == pytest.approx(0.775) and c_all["wall"]["min"] == pytest.approx(0.70)
    assert c_all["wall"]["reached"] == 1 and c_all["wall"]["disturbed"]
    assert c_all["cpu"]["reached"] == 2 and not c_all["cpu"]["disturbed"]
    assert got[("avx512", "equal")]["wall"] == {"median": 1.1, "min": 1.1, "reached": 1, "n": 1,
                                                 "disturbed": False}
    text = "\n".join(speed.render_targets(workers, rows))
    assert "| 1 | `c` | fwd | all | 0.8 | 0.77† | 0.70† | 1/2 | 0.88 | 0.85 | 2/2 |" in text
    paths = "\n".join(speed.render_paths(workers, rows))
    assert "c/torch cpu" in paths and "| 0.70 | 0.60 | 1.20 | 0.90 | 0.60 |" in paths


def test_speed_report_without_torch_says_so():
    """Without torch the targets and ratio columns are left out with a note."""
    speed = load_script("speed")
    workers = [{"ours_path": "c"}]
    rows = [_speed_row("equal", "fwd", {"ours": 100.0, "ours_numpy": 50.0}, {"ours": 100.0, "ours_numpy": 50.0})]
    assert speed.target_rows(workers, rows) == []
    assert "torch is not installed" in "\n".join(speed.render_targets(workers, rows))
    paths = "\n".join(speed.render_paths(workers, rows))
    assert "torch not installed: no ratios" in paths and "/torch" not in paths


def test_speed_times_wall_and_cpu():
    speed = load_script("speed")
    calls = []
    wall, cpu = speed.time_calls(lambda arg: calls.append(arg) or sum(range(20000)), lambda: 7,
                                 warmup=1, repeats=3)
    assert calls == [7] * 4 and len(wall) == len(cpu) == 3
    assert all(w > 0 and c >= 0 for w, c in zip(wall, cpu))


def test_blas_threads_settings_and_summary(monkeypatch):
    script = load_script("blas_threads")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    assert "OPENBLAS_NUM_THREADS" not in script.setting_env("default")
    assert script.setting_env("one")["OPENBLAS_NUM_THREADS"] == "1"
    runs = {"default": [{"c uni fwd": 0.030}, {"c uni fwd": 0.050}, {"c uni fwd": 0.040}],
            "one": [{"c uni fwd": 0.010}, {"c uni fwd": 0.020}, {"c uni fwd": 0.030}]}
    (row,) = script.summarise(runs)
    assert row["path"] == "c" and row["dirs"] == "uni" and row["mode"] == "fwd"
    assert row["default_ms"] == pytest.approx(40.0) and row["default_over_one"] == pytest.approx(2.0)


def test_demo_halves_alternate_and_cover_the_set():
    demo = load_script("demo")
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(f"Sentence {i}.") for i in range(5)]
    parts = demo.halves(docs)
    assert [d.text for d in parts["A"]] == ["Sentence 0.", "Sentence 2.", "Sentence 4."]
    assert [d.text for d in parts["B"]] == ["Sentence 1.", "Sentence 3."]
    assert parts["all"] == docs


def test_demo_showcase_needs_every_entity_with_its_label():
    demo = load_script("demo")
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": label, "pattern": text} for text, label in demo.SHOWCASE_GOLD])
    result = demo.showcase(nlp)
    assert result["right"] and not result["missed"] and not result["wrong"]
    assert [e["p"] for e in result["entities"]] == [None] * 7  # no span group: no probabilities
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "ORG" if text == "Lisbon" else label, "pattern": text}
                        for text, label in demo.SHOWCASE_GOLD if text != "Vincent Vega"]
                       + [{"label": "PER", "pattern": "Vega"}])
    result = demo.showcase(nlp)
    assert not result["right"]
    assert result["missed"] == [("Lisbon", "LOC"), ("Vincent Vega", "PER")]
    assert result["wrong"] == [("Lisbon", "ORG"), ("Vega", "PER")]


def test_demo_report_renders_from_its_json_alone():
    demo = load_script("demo")
    scores = lambda f: {"docs": 2, "entities": 3, "p": f, "r": f, "f": f,  # noqa: E731
                        "per_type": {"PER": f, "ORG": f, "LOC": f}}
    run = {
        "seed": 1, "train_seconds": 61.25, "loadavg_before": [3.5, 2.0, 1.0], "loadavg_after": None,
        "dev": scores(0.9), "handwritten": {"all": scores(0.8), "A": scores(0.75), "B": scores(0.85)},
        "ece": {"ece": 0.1234, "n": 3},
        "showcase": {"entities": [{"text": "Vega", "label": "PER", "p": 0.5}], "right": False,
                     "missed": [("Vincent Vega", "PER")], "wrong": [("Vega", "PER")]},
    }
    report = {"meta": {"command": "python benchmarks/demo.py --seeds 1", "date": "2026-12-01",
                       "config": "configs/lstm.cfg", "bins": 10,
                       "machine": {"cpu": "cpu", "cpus_allowed": 2, "git": "abc",
                                   "versions": {"spacy": "3.8", "thinc": "8.3"}}},
              "runs": [run]}
    md = demo.render_markdown(json.loads(json.dumps(report)))
    assert "`python benchmarks/demo.py --seeds 1`" in md
    row = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    assert row == ("| 1 | 61.2 s | 3.5 | 0.900 | 0.800 (0.800 / 0.800) | 0.750 | 0.850 | "
                   "0.80 / 0.80 / 0.80 / n/a | 0.123 | wrong |")
    assert "showcase right for 0 of 1" in md
    assert "- seed 1: `Vega` PER (0.50) — missed: Vincent Vega PER; wrong: Vega PER" in md


def consistency_docs(vocab):
    """Two gold docs with 4 repeated strings (8 mentions): Jules PER x2, Paris
    LOC x2, Acme ORG x2 (Vincent occurs once); Washington LOC then ORG."""
    from spacy.tokens import Doc

    words = ["Jules", "met", "Jules", "in", "Paris", ",", "Paris", "and", "Acme", "Acme", "Vincent"]
    ents = ["B-PER", "O", "B-PER", "O", "B-LOC", "O", "B-LOC", "O", "B-ORG", "B-ORG", "B-PER"]
    return [Doc(vocab, words=words, ents=ents),
            Doc(vocab, words=["Washington", "beat", "Washington"], ents=["B-LOC", "O", "B-ORG"])]


def test_doc_consistency_counts_repeated_strings():
    from spacy.tokens import Doc

    script = load_script("doc_consistency")
    nlp = spacy.blank("en")
    golds = consistency_docs(nlp.vocab)
    words = [[t.text for t in g] for g in golds]
    # Jules PER/ORG, Paris LOC/LOC, Acme missed twice; Washington LOC/LOC.
    first = [Doc(nlp.vocab, words=words[0], ents=["B-PER", "O", "B-ORG", "O", "B-LOC", "O", "B-LOC",
                                                   "O", "O", "O", "B-PER"]),
             Doc(nlp.vocab, words=words[1], ents=["B-LOC", "O", "B-LOC"])]
    result = script.consistency(golds, first)
    assert (result["strings"], result["mentions"], result["gold_same_label"]) == (4, 8, 3)
    assert result["same_label"] == 2 and result["same_label_rate"] == 0.5  # Paris, Washington
    assert result["gold_label"] == 1 and result["gold_label_rate"] == 0.25  # Paris
    # Jules PER/PER, Paris LOC and a wrong boundary, Acme ORG/ORG, Washington right.
    other = [Doc(nlp.vocab, words=words[0], ents=["B-PER", "O", "B-PER", "O", "B-LOC", "B-MISC",
                                                   "I-MISC", "O", "B-ORG", "B-ORG", "O"]),
             Doc(nlp.vocab, words=words[1], ents=["B-LOC", "O", "B-ORG"])]
    second = script.consistency(golds, other)
    # Washington is right but not one label: same label can be below gold label.
    assert (second["same_label"], second["gold_label"]) == (2, 3)
    # 3 against 1 discordant: P(split at least 3:1 of 4) = 2 * 5/16.
    assert script.paired(result["outcomes"], second["outcomes"]) == {
        "only_other": 3, "only_first": 1, "p_sign_test": 0.625}
    assert script.sign_test(0, 0) == 1.0 and script.sign_test(10, 0) == pytest.approx(2 / 1024)
    with pytest.raises(ValueError, match="tokens differ"):
        script.consistency(golds[:1], golds[1:])


def test_doc_consistency_scores_a_pipeline_on_dev_only(tmp_path):
    """End to end on a saved rule-based pipeline: it finds Jules and Paris
    (both twice, so 2 of 4 strings right) and nothing else: P 4/4, R 4/9."""
    from spacy.tokens import DocBin

    script = load_script("doc_consistency")
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(
        [{"label": "PER", "pattern": "Jules"}, {"label": "LOC", "pattern": "Paris"}])
    nlp.to_disk(tmp_path / "ruler")
    DocBin(docs=consistency_docs(nlp.vocab)).to_disk(tmp_path / "dev.spacy")
    out = tmp_path / "report"
    script.main([str(tmp_path / "dev.spacy"), "--models", f"ruler={tmp_path / 'ruler'}",
                 f"again={tmp_path / 'ruler'}", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    ruler, again = report["models"]
    assert (ruler["same_label_rate"], ruler["gold_label_rate"], ruler["gold_same_label_rate"]) == (0.5, 0.5, 0.75)
    assert ruler["ents_p"] == 1.0 and ruler["ents_r"] == pytest.approx(4 / 9)
    assert ruler["ents_f"] == pytest.approx(8 / 13)
    assert again["paired"] == {"only_other": 0, "only_first": 0, "p_sign_test": 1.0}
    md = out.with_suffix(".md").read_text()
    assert "| 50.00 | 50.00 | 100.00 | 44.44 | 61.54 |" in md and "75.00% of them" in md
    DocBin(docs=consistency_docs(nlp.vocab)).to_disk(tmp_path / "test.spacy")
    with pytest.raises(SystemExit, match="dev data only"):
        script.main([str(tmp_path / "test.spacy"), "--models", f"ruler={tmp_path / 'ruler'}",
                     "--out", str(out)])


# --- ensemble.py ---------------------------------------------------------------


def test_ensemble_script_scores_members_ensembles_and_baselines(tmp_path):
    """Four small pipelines joined in pairs and all together, scored beside
    their members and a baseline on dev; test data needs --allow-test."""
    from spacy.tokens import DocBin

    from .conftest import make_examples
    from .robust import small_config, train_small

    paths = []
    for seed in range(4):
        nlp = train_small(small_config(crf=True), seed=seed, steps=20)
        nlp.to_disk(tmp_path / f"m{seed}")
        paths.append(str(tmp_path / f"m{seed}"))
    db = DocBin(docs=[eg.reference for eg in make_examples(nlp.vocab)])
    for name in ("dev", "train", "test"):
        db.to_disk(tmp_path / f"{name}.spacy")
    script = load_script("ensemble")
    common = ["--models", *paths, "--size", "2", "4", "--dev", str(tmp_path / "dev.spacy"),
              "--train", str(tmp_path / "train.spacy"), "--speed-rounds", "1"]
    with pytest.raises(SystemExit, match="test data"):
        script.main(common + ["--test", str(tmp_path / "test.spacy"), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--size 3: need groups"):
        script.main(common[:5] + ["--size", "2", "3"] + common[8:] + ["--out", str(tmp_path / "x")])
    report = script.main(common + ["--baselines", f"single={paths[0]}", "--out", str(tmp_path / "out")])
    result = report["result"]
    names = [Path(m["path"]).name for m in result["members"]]
    assert names == ["m0", "m1", "m2", "m3"]
    assert [(g["size"], [Path(m["path"]).name for m in g["members"]]) for g in result["groups"]] == [
        (2, names[:2]), (2, names[2:]), (4, names)]
    for scores in [m["dev"] for m in result["members"]] + [g["ensemble"]["dev"] for g in result["groups"]]:
        assert 0.0 <= scores["f"] <= 1.0 and set(scores["per_type"]) <= {"LOC", "ORG", "PER"}
    for group in result["groups"]:
        # Every gold mention is seen in training here.
        assert group["ensemble"]["dev"]["unseen"]["gold"] == 0
        assert group["words_per_s"]["ensemble"] > 0 and group["words_per_s"]["member"] > 0
    assert result["baselines"][0]["dev"]["f"] == result["members"][0]["dev"]["f"]
    md = (tmp_path / "out.md").read_text()
    assert "one model (4)" in md and "ensembles of 2 (2)" in md and "ensembles of 4 (1)" in md
    assert "single (1)" in md


def test_profile_parts_time_the_model_and_restore_it():
    """The timed parts of an nlp.pipe pass: the RNN, the decoding and the
    rest add up to the pass, and every patched function is restored."""
    from spacy_rnn_ner import pipeline

    from .test_memory import make_nlp

    profile = load_script("profile_pipeline")
    nlp = make_nlp(crf=True)
    funcs = [node._func for node in nlp.get_pipe("rnn_ner").model.walk()]
    texts = ["Ada went to Paris with Acme Corp ."] * 20
    total, rows = profile.timed_parts(nlp, lambda: list(nlp.pipe(texts)))
    parts = {row["part"]: row["seconds"] for row in rows}
    assert {"RNN layer", "decoding (Viterbi, probabilities)", "output layer"} <= set(parts)
    assert sum(parts.values()) == pytest.approx(total)
    assert all(s >= 0 for part, s in parts.items() if not part.startswith("rest"))
    assert [node._func for node in nlp.get_pipe("rnn_ner").model.walk()] == funcs
    assert "decode" not in vars(pipeline.RNNEntityRecognizer)
    assert pipeline.decode.__module__ == "spacy_rnn_ner.decode"


# --- distill.py ----------------------------------------------------------------


def test_agreement_counts_tokens_and_entities():
    from spacy.tokens import Doc, Span

    script = load_script("distill")
    nlp = spacy.blank("en")
    a = Doc(nlp.vocab, words=["Ada", "met", "Alan", "."])
    b = a.copy()
    a.ents = [Span(a, 0, 1, "PER"), Span(a, 2, 3, "PER")]
    b.ents = [Span(b, 0, 1, "PER"), Span(b, 2, 3, "ORG")]
    got = script.agreement([a], [b])
    assert got["tokens"] == pytest.approx(3 / 4)
    assert got["ents_f"] == pytest.approx(0.5)
    assert script.agreement([a], [a]) == {"tokens": 1.0, "ents_f": 1.0}


@pytest.mark.slow
def test_distill_script_trains_students_and_baselines(tmp_path):
    """One seed of a few steps: a student and an undistilled model, scored,
    timed and reported beside a baseline; a second run reuses them."""
    from spacy.tokens import DocBin

    from .conftest import make_examples
    from .robust import small_config, train_small

    teacher = train_small(small_config(crf=True), seed=0, steps=20)
    teacher.to_disk(tmp_path / "teacher")
    DocBin(docs=[eg.reference for eg in make_examples(teacher.vocab)]).to_disk(tmp_path / "d.spacy")
    script = load_script("distill")
    args = ["--teacher", str(tmp_path / "teacher"), "--seeds", "4", "--dev", str(tmp_path / "d.spacy"),
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
            "--baselines", f"other={tmp_path / 'teacher'}",
            "--speed-rounds", "1", "--", "--paths.train", str(tmp_path / "d.spacy"),
            "--paths.dev", str(tmp_path / "d.spacy"), "--training.max_steps", "4",
            "--training.eval_frequency", "2"]
    result = script.main(args)["result"]
    (row,) = result["seeds"]
    for kind in ("distilled", "undistilled"):
        assert 0.0 <= row[kind]["dev"]["ents_f"] <= 1.0
        assert 0.0 <= row[kind]["agreement"]["tokens"] <= 1.0
        assert row[kind]["train_s"] > 0 and row["words_per_s"][kind] > 0
    (baseline,) = result["baselines"]
    assert baseline["dev"] == result["teacher"]["dev"]  # the same pipeline, scored alike
    assert row["words_per_s"]["other"] > 0
    md = (tmp_path / "out.md").read_text()
    assert "| 4 | distilled |" in md and "student / undistilled" in md and "core-hours" in md
    assert "| | other (" in md
    again = script.main(args)["result"]["seeds"][0]
    assert again["distilled"]["train_s"] is None
    assert again["distilled"]["dev"] == row["distilled"]["dev"]
