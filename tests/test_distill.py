"""Distillation: the structure-level KL against brute force and finite
differences, and the component's `distill` on small pipelines."""
import numpy
import pytest
import spacy
from numpy.testing import assert_allclose
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from spacy_rnn_ner import distillation
from spacy_rnn_ner.crf import Chain
from spacy_rnn_ner.pipeline import DEFAULT_RNN_NER_MODEL

from .conftest import make_examples
from .test_crf import N_TAGS, TAGS, brute, path_scores, random_crf, valid_paths
from .util import numeric_grad

xp = numpy
LENGTHS = [4, 1, 0, 3, 2]


def brute_kl(t, s, lengths):
    """sum over rows of KL(teacher || student) over all valid paths."""
    total = 0.0
    for b, n in enumerate(lengths):
        if not n:
            continue
        _, p_t, _ = brute(t[0][b, :n], *t[1:])
        _, p_s, _ = brute(s[0][b, :n], *s[1:])
        total += float((p_t * (numpy.log(p_t) - numpy.log(p_s))).sum())
    return total


def test_kl_matches_brute_force_and_is_zero_for_the_same_chain():
    t_emis, lengths, *t_params = random_crf(1, LENGTHS)
    s_emis, _, *s_params = random_crf(2, LENGTHS)
    loss, _, _ = distillation._kl(xp, Chain(TAGS, *t_params), t_emis, Chain(TAGS, *s_params),
                                  s_emis, lengths)
    assert loss == pytest.approx(brute_kl([t_emis, *t_params], [s_emis, *s_params], LENGTHS),
                                 rel=1e-9)
    same, d_emis, d_params = distillation._kl(xp, Chain(TAGS, *t_params), t_emis,
                                              Chain(TAGS, *t_params), t_emis, lengths)
    assert abs(same) < 1e-9
    assert numpy.abs(d_emis).max() < 1e-9 and all(numpy.abs(d).max() < 1e-9 for d in d_params)


def test_kl_gradients_match_finite_differences():
    """float64: the gradient for the student's emissions, transitions,
    start and end; the teacher's are constants."""
    t_emis, lengths, *t_params = random_crf(3, LENGTHS)
    s_emis, _, s_trans, s_start, s_end = random_crf(4, LENGTHS)
    teacher = Chain(TAGS, *t_params)

    def total():
        return distillation._kl(xp, teacher, t_emis, Chain(TAGS, s_trans, s_start, s_end),
                                s_emis, lengths)[0]

    _, d_emis, (d_trans, d_start, d_end) = distillation._kl(
        xp, teacher, t_emis, Chain(TAGS, s_trans, s_start, s_end), s_emis, lengths
    )
    for analytic, array in [(d_emis, s_emis), (d_trans, s_trans), (d_start, s_start), (d_end, s_end)]:
        numeric = numeric_grad(total, array, 1e-6)
        assert_allclose(analytic, numeric, atol=1e-6, rtol=1e-4)


def tiny_nlp(seed: int, crf: bool = True, data=None):
    fix_random_seed(seed)
    model = {**DEFAULT_RNN_NER_MODEL, "tok2vec": {**DEFAULT_RNN_NER_MODEL["tok2vec"]}}
    model["tok2vec"]["embed"] = {**model["tok2vec"]["embed"], "width": 16}
    model["tok2vec"]["encode"] = {**model["tok2vec"]["encode"], "width": 16}
    if crf:
        model["@architectures"] = "spacy-rnn-ner.RNNCRFTagger.v1"
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config={"model": model})
    examples = make_examples(nlp.vocab) if data is None else make_examples(nlp.vocab, data)
    nlp.initialize(lambda: examples)
    return nlp, examples


def trained(seed: int, crf: bool = True, n_iter: int = 25):
    nlp, examples = tiny_nlp(seed, crf)
    optimizer = Adam(0.01)
    for _ in range(n_iter):
        nlp.update(examples, sgd=optimizer)
    return nlp, examples


def unlabelled(vocab, texts):
    return [Example(Doc(vocab, words=t.split()), Doc(vocab, words=t.split())) for t in texts]


RAW = ["Ada met Grace in Rome .", "Acme Corp hired Alan in Berlin .", "Nothing at all .",
       "Grace flew to Paris for Globex ."]


def agreement(teacher, student, texts) -> float:
    """Share of tokens on which the two pipelines' BILUO tags agree."""
    same = total = 0
    for text in texts:
        a, b = teacher(text), student(text)
        same += sum((x.ent_iob_, x.ent_type_) == (y.ent_iob_, y.ent_type_) for x, y in zip(a, b))
        total += len(a)
    return same / total


@pytest.mark.parametrize("crf", [True, False])
def test_distill_loss_falls_and_student_agrees_more_than_undistilled(crf):
    teacher, examples = trained(0, crf)
    student, _ = tiny_nlp(1, crf)
    undistilled, _ = tiny_nlp(1, crf)
    t_ner, s_ner = teacher.get_pipe("rnn_ner"), student.get_pipe("rnn_ner")
    batch = unlabelled(student.vocab, RAW) + [Example(eg.predicted.copy(), eg.reference)
                                              for eg in make_examples(student.vocab)]
    optimizer = Adam(0.01)
    history = []
    for _ in range(50):
        history.append(s_ner.distill(t_ner, batch, sgd=optimizer)["rnn_ner"])
    assert history[-1] < 0.2 * history[0]
    texts = RAW + [eg.reference.text for eg in examples]
    assert agreement(teacher, student, texts) > agreement(teacher, undistilled, texts)
    assert agreement(teacher, student, texts) > 0.9


def test_unlabelled_docs_get_the_teacher_term_only():
    """With teacher_weight 0.5, an unannotated doc's gradient is the KL
    gradient alone (as with teacher_weight 1), and the annotated docs' gold
    term is the same with or without unannotated docs in the batch."""
    teacher, _ = trained(0)
    student, _ = trained(1, n_iter=3)
    t_ner, s_ner = teacher.get_pipe("rnn_ner"), student.get_pipe("rnn_ner")
    labelled = make_examples(student.vocab)
    raw = unlabelled(student.vocab, RAW)

    def d_scores(examples, weight):
        captured = {}
        real_step = s_ner._step

        def step(examples, get_loss, **kwargs):
            docs = [eg.predicted for eg in examples]
            scores = s_ner.model.predict(docs)
            captured["d"], captured["loss"] = get_loss(docs, scores)
            return {}

        s_ner._step = step
        try:
            s_ner.distill(t_ner, examples, teacher_weight=weight)
        finally:
            s_ner._step = real_step
        return captured

    mixed = d_scores(labelled + raw, 0.5)
    teacher_only = d_scores(labelled + raw, 1.0)
    alone = d_scores(labelled, 0.5)
    n = len(labelled)
    for got, want in zip(mixed["d"][n:], teacher_only["d"][n:]):
        assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for got, want in zip(mixed["d"][:n], alone["d"][:n]):
        assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not all(numpy.allclose(a, b) for a, b in zip(mixed["d"][:n], teacher_only["d"][:n]))


def test_raw_text_from_spacy_jsonl_corpus_is_unlabelled(tmp_path):
    """spaCy's JsonlCorpus reader (raw {"text": ...} lines) gives examples
    without entity annotation: distill learns from the teacher alone there."""
    from spacy.util import registry

    path = tmp_path / "raw.jsonl"
    path.write_text("\n".join('{"text": "%s"}' % t for t in RAW), encoding="utf8")
    teacher, _ = trained(0, n_iter=5)
    student, _ = tiny_nlp(1)
    corpus = registry.resolve({"c": {"@readers": "spacy.JsonlCorpus.v1", "path": str(path)}})["c"]
    examples = list(corpus(student))
    s_ner = student.get_pipe("rnn_ner")
    assert len(examples) == len(RAW)
    assert all(t is None for tags in s_ner._gold_tags(examples) for t in tags)
    before = s_ner.model.get_ref("output_layer").get_param("W").copy()
    losses = s_ner.distill(teacher.get_pipe("rnn_ner"), examples, sgd=Adam(0.01), teacher_weight=0.0)
    assert losses["rnn_ner"] > 0  # teacher_weight applies to annotated docs only
    assert not numpy.array_equal(s_ner.model.get_ref("output_layer").get_param("W"), before)


def test_distill_checks_its_teacher_and_examples():
    teacher, _ = trained(0, n_iter=1)
    other, _ = tiny_nlp(0, data=[(["Ada", "ran", "."], ["U-PER", "O", "O"])])
    student, examples = tiny_nlp(1)
    s_ner = student.get_pipe("rnn_ner")
    with pytest.raises(ValueError, match="labels"):
        s_ner.distill(other.get_pipe("rnn_ner"), examples)
    with pytest.raises(ValueError, match="rnn_ner component"):
        s_ner.distill(spacy.blank("en").add_pipe("ner"), examples)
    with pytest.raises(ValueError, match="teacher_weight"):
        s_ner.distill(teacher.get_pipe("rnn_ner"), examples, teacher_weight=1.5)
    split = Example(Doc(student.vocab, words=["Ada", "Lovelace"]),
                    Doc(student.vocab, words=["Ada Lovelace"], spaces=[False]))
    with pytest.raises(ValueError, match="same tokens"):
        s_ner.distill(teacher.get_pipe("rnn_ner"), [split])
    # Empty docs: nothing to learn, no error.
    empty = unlabelled(student.vocab, [""])
    assert s_ner.distill(teacher.get_pipe("rnn_ner"), empty) == {"rnn_ner": 0.0}


def test_teacher_listening_to_a_shared_tok2vec_is_refused():
    """A listener only runs inside its own pipeline: distill says so."""
    from .robust import small_config

    teacher = spacy.blank("en")
    teacher.add_pipe("tok2vec", config={"model": {
        "@architectures": "spacy.HashEmbedCNN.v2", "width": 16, "depth": 1, "embed_size": 500,
        "window_size": 1, "maxout_pieces": 2, "subword_features": False, "pretrained_vectors": None}})
    config = small_config(crf=True)
    config["model"]["tok2vec"] = {"@architectures": "spacy.Tok2VecListener.v1", "width": 16}
    teacher.add_pipe("rnn_ner", config=config)
    teacher.initialize(lambda: make_examples(teacher.vocab))
    student, examples = tiny_nlp(1)
    with pytest.raises(ValueError, match="shared tok2vec"):
        student.get_pipe("rnn_ner").distill(teacher.get_pipe("rnn_ner"), examples)


def test_plain_text_reader_and_concat(tmp_path):
    """PlainTextCorpus: a doc per non-blank line, references without
    annotation; ConcatCorpus: one corpus after the other."""
    from spacy.util import registry

    (tmp_path / "raw.txt").write_text("Ada met Grace .\n\n  \nGlobex hired Alan in Rome\nshort\n",
                                      encoding="utf8")
    nlp, _ = tiny_nlp(0)

    def reader(**cfg):
        return registry.resolve({"r": cfg})["r"]

    plain = {"@readers": "spacy-rnn-ner.PlainTextCorpus.v1", "path": str(tmp_path / "raw.txt")}
    examples = list(reader(**plain)(nlp))
    assert [eg.predicted.text for eg in examples] == [
        "Ada met Grace .", "Globex hired Alan in Rome", "short"]
    assert not any(eg.reference.has_annotation("ENT_IOB") for eg in examples)
    assert all(eg.reference is not eg.predicted for eg in examples)
    ner = nlp.get_pipe("rnn_ner")
    assert all(t is None for tags in ner._gold_tags(examples) for t in tags)
    limited = reader(**{**plain, "path": str(tmp_path), "min_length": 2, "max_length": 4, "limit": 1})
    assert [eg.predicted.text for eg in limited(nlp)] == ["Ada met Grace ."]
    both = reader(**{"@readers": "spacy-rnn-ner.ConcatCorpus.v1",
                     "*": {"a": plain, "b": {**plain, "limit": 1}}})
    assert [eg.predicted.text for eg in both(nlp)][2:] == ["short", "Ada met Grace ."]
    with pytest.raises(ValueError, match="no such file"):
        reader(**{**plain, "path": str(tmp_path / "missing.txt")})


def test_with_unlabelled_extends_the_training_corpus(tmp_path):
    from pathlib import Path

    from spacy.util import load_config

    from spacy_rnn_ner.cli.distill import with_unlabelled

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "raw.txt").write_text("Ada met Grace .\n", encoding="utf8")
    (tmp_path / "raw.jsonl").write_text('{"text": "Alan in Rome"}\n', encoding="utf8")
    config = load_config(root / "configs" / "lstm.cfg", interpolate=False)
    extended = with_unlabelled(config, [tmp_path / "raw.txt", tmp_path / "raw.jsonl"])
    assert extended["training"]["train_corpus"] == "corpora.distill_train"
    readers = extended["corpora"]["distill_train"]["*"]
    assert readers["gold"] == config["corpora"]["train"]
    assert readers["unlabelled0"]["@readers"] == "spacy-rnn-ner.PlainTextCorpus.v1"
    assert readers["unlabelled1"]["@readers"] == "spacy.JsonlCorpus.v1"
    assert config["training"]["train_corpus"] == "corpora.train"  # a copy
    with pytest.raises(ValueError, match="not found"):
        with_unlabelled(config, [tmp_path / "none.txt"])


def test_get_teacher_student_loss_is_zero_for_the_same_scores():
    nlp, examples = trained(0, n_iter=5)
    ner = nlp.get_pipe("rnn_ner")
    scores = ner.predict([eg.predicted for eg in examples])
    loss, d_scores = ner.get_teacher_student_loss(scores, scores, teacher_pipe=ner)
    assert abs(loss) < 1e-3
    assert max(float(numpy.abs(d).max()) for d in d_scores) < 1e-4
    other = [s + numpy.random.default_rng(0).normal(size=s.shape).astype("f") for s in scores]
    loss, _ = ner.get_teacher_student_loss(scores, other)
    assert loss > 0.1


@pytest.mark.slow
def test_distill_command_end_to_end(tmp_path):
    """Teacher: two configs/lstm.cfg pipelines joined by `ensemble`; the
    `distill` command trains a student from the same config, in spaCy's
    loop; the output loads without the teacher, agrees with it, and
    calibrates."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    run = lambda *cmd: subprocess.run(  # noqa: E731
        [sys.executable, *cmd], check=True, capture_output=True, text=True, cwd=tmp_path)
    run(str(root / "corpus" / "build.py"), "--out-dir", str(tmp_path))
    config = str(root / "configs" / "lstm.cfg")
    paths = ["--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "dev.spacy")]
    for seed in (0, 1):
        run("-m", "spacy", "train", config, "--output", str(tmp_path / f"m{seed}"), *paths,
            "--training.max_steps", "150", "--training.eval_frequency", "150",
            "--system.seed", str(seed))
    run("-m", "spacy_rnn_ner", "ensemble", str(tmp_path / "m0" / "model-last"),
        str(tmp_path / "m1" / "model-last"), "--output", str(tmp_path / "teacher"))
    (tmp_path / "raw.txt").write_text("\n".join(RAW) + "\n", encoding="utf8")
    out = run("-m", "spacy_rnn_ner", "distill", str(tmp_path / "teacher"), config,
                      "--output", str(tmp_path / "student"), *paths, "--teacher-weight", "0.5",
                      "--unlabelled", str(tmp_path / "raw.txt"),
                      "--training.max_steps", "150", "--training.eval_frequency", "50",
                      "--system.seed", "2")
    assert "LOSS RNN_NER" in out.stdout and "ENTS_F" in out.stdout  # spaCy's progress table
    student = spacy.load(tmp_path / "student" / "model-best")
    teacher = spacy.load(tmp_path / "teacher")
    assert student.get_pipe("rnn_ner").labels == teacher.get_pipe("rnn_ner").labels
    assert student.config["components"]["rnn_ner"]["model"]["@architectures"] != (
        "spacy-rnn-ner.EnsembleCRFTagger.v1")
    # The saved config has the teacher's labels and the corpus with raw text.
    assert student.config["initialize"]["components"]["rnn_ner"]["labels"] == list(
        teacher.get_pipe("rnn_ner").labels)
    assert student.config["training"]["train_corpus"] == "corpora.distill_train"
    from spacy.tokens import DocBin

    dev = list(DocBin().from_disk(tmp_path / "dev.spacy").get_docs(student.vocab))[:100]
    assert agreement(teacher, student, [doc.text for doc in dev]) > 0.9
    scores = student.evaluate([Example(student.make_doc(doc.text), doc) for doc in dev])
    assert scores["ents_f"] > 0.3
    run("-m", "spacy_rnn_ner", "calibrate", str(tmp_path / "student" / "model-best"),
        str(tmp_path / "dev.spacy"))
    # Errors are one line, no traceback.
    bad = subprocess.run([sys.executable, "-m", "spacy_rnn_ner", "distill", str(tmp_path / "none"),
                          config], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: could not load the teacher")
    bad = subprocess.run([sys.executable, "-m", "spacy_rnn_ner", "distill", str(tmp_path / "teacher"),
                          config, "--unlabelled", "none.txt"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: unlabelled text not found")
