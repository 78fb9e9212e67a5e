"""`python -m spacy_rnn_ner distill TEACHER CONFIG --output DIR [--paths.* ...]`:
train a student `rnn_ner` from a normal training config to tag like a
teacher pipeline (e.g. an ensemble saved by the `ensemble` command)."""
import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from thinc.api import Config

import spacy
from spacy.cli._util import parse_config_overrides, show_validation_error
from spacy.training.initialize import init_nlp
from spacy.training.loop import train as train_nlp
from spacy.util import load_config

from ..pipeline import RNNEntityRecognizer
from ._util import fail

DESCRIPTION = """\
Train the rnn_ner component of CONFIG (a `spacy train` config) as a student
of the TEACHER pipeline's rnn_ner: each update is the component's `distill`
(the structure-level KL of the student's chain from the teacher's; with
--teacher-weight below 1, mixed with the gold loss on annotated docs),
inside spaCy's own training loop (batcher, logger, evaluation on dev,
model-best and model-last, [training] settings). The student gets the
teacher's labels. Docs without entity annotation learn from the teacher
alone: raw text given with --unlabelled joins the training corpus, and the
config's own corpus may be raw text too (spacy.JsonlCorpus.v1 for
{"text": ...} lines, spacy-rnn-ner.PlainTextCorpus.v1 for a doc a line).
The output loads with spacy.load and needs no teacher; refit its
temperature with `python -m spacy_rnn_ner calibrate`. Other options
(--paths.train, --training.max_steps, ...) override the config, as for
`spacy train`."""


def parse_args(argv: Sequence[str]):
    p = argparse.ArgumentParser(prog="python -m spacy_rnn_ner distill", description=DESCRIPTION)
    p.add_argument("teacher", help="the teacher pipeline: a directory or package name")
    p.add_argument("config", type=Path, help="the student's training config")
    p.add_argument("--output", "-o", type=Path, default=None,
                   help="directory for model-best and model-last")
    p.add_argument("--component", "-c", default="rnn_ner",
                   help="the component name, in both pipelines (default rnn_ner)")
    p.add_argument("--teacher-weight", type=float, default=1.0,
                   help="weight of the teacher term on annotated docs, in [0, 1] (default 1)")
    p.add_argument("--unlabelled", "-u", type=Path, action="append", default=[],
                   help="raw text to add to the training corpus: .txt (a doc a line), "
                        ".jsonl ({\"text\": ...} a line) or .spacy; repeatable")
    p.add_argument("--gpu-id", "-g", type=int, default=-1, help="GPU id, or -1 for CPU")
    return p.parse_known_args(argv)


def with_unlabelled(config: Config, paths: Sequence[Path]) -> Config:
    """A copy of `config` (not interpolated) whose training corpus is its
    own and the raw text of `paths` (spacy-rnn-ner.ConcatCorpus.v1)."""
    config = Config(config).copy()
    train_key = config["training"]["train_corpus"]
    section, _, name = train_key.partition(".")
    if section != "corpora" or name not in config["corpora"]:
        raise ValueError(f"training.train_corpus {train_key!r} is not a [corpora] entry")
    readers: Dict[str, Dict[str, Any]] = {"gold": dict(config["corpora"][name])}
    for i, path in enumerate(paths):
        readers[f"unlabelled{i}"] = _raw_text_reader(Path(path))
    config["corpora"]["distill_train"] = {"@readers": "spacy-rnn-ner.ConcatCorpus.v1", "*": readers}
    config["training"]["train_corpus"] = "corpora.distill_train"
    return config


def _raw_text_reader(path: Path) -> Dict[str, Any]:
    if not path.exists():
        raise ValueError(f"unlabelled text not found: {path}")
    if path.suffix == ".jsonl":
        return {"@readers": "spacy.JsonlCorpus.v1", "path": str(path)}
    if path.suffix == ".spacy":
        return {"@readers": "spacy.Corpus.v1", "path": str(path)}
    return {"@readers": "spacy-rnn-ner.PlainTextCorpus.v1", "path": str(path)}


def distill_cli(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command. RETURNS (int): the exit status."""
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    if not 0.0 <= args.teacher_weight <= 1.0:
        return fail(f"--teacher-weight must be in [0, 1], got {args.teacher_weight}")
    if not args.config.is_file():
        return fail(f"config file not found: {args.config}")
    try:
        overrides = parse_config_overrides(list(extra))
    except SystemExit:
        return fail(f"could not read the config overrides {extra}")
    try:
        teacher_nlp = spacy.load(args.teacher)
    except (OSError, ValueError) as e:
        return fail(f"could not load the teacher pipeline {args.teacher}: {e}")
    if args.component not in teacher_nlp.pipe_names:
        return fail(f"the teacher has no component {args.component!r} ({teacher_nlp.pipe_names})")
    teacher = teacher_nlp.get_pipe(args.component)
    if not isinstance(teacher, RNNEntityRecognizer):
        return fail(f"the teacher's {args.component!r} is not an rnn_ner component")
    with show_validation_error(args.config, hint_fill=False):
        config = load_config(args.config, overrides=overrides, interpolate=False)
        if args.component not in config["nlp"]["pipeline"]:
            return fail(f"the config's pipeline has no component {args.component!r}")
        try:
            config = with_unlabelled(config, args.unlabelled) if args.unlabelled else config
        except ValueError as e:
            return fail(str(e))
        # The student gets the teacher's labels, written into the config it
        # saves (so `spacy train` can rerun that config).
        init_components = config["initialize"].setdefault("components", {})
        init_components[args.component] = {
            **init_components.get(args.component, {}), "labels": list(teacher.labels)}
        nlp = init_nlp(config, use_gpu=args.gpu_id)
    student = nlp.get_pipe(args.component)
    if not isinstance(student, RNNEntityRecognizer):
        return fail(f"the config's {args.component!r} is not an rnn_ner component")
    try:
        student._check_teacher(teacher)  # same labels, a tok2vec of its own
    except ValueError as e:
        return fail(str(e))
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
    # spaCy's loop calls update() on each component: for this one, distill.
    student.update = partial(student.distill, teacher, teacher_weight=args.teacher_weight)
    try:
        train_nlp(nlp, args.output, use_gpu=args.gpu_id, stdout=sys.stdout, stderr=sys.stderr)
    finally:
        del student.update
    return 0
