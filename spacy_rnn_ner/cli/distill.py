"""`python -m spacy_rnn_ner distill TEACHER CONFIG --output DIR [--paths.* ...]`:
train a student `rnn_ner` from a normal training config to tag like a
teacher pipeline (e.g. an ensemble saved by the `ensemble` command)."""
import argparse
import json
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

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
teacher's labels. Docs without entity annotation (e.g. a corpus read by
spacy.JsonlCorpus.v1 from {"text": ...} lines) learn from the teacher alone.
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
    p.add_argument("--gpu-id", "-g", type=int, default=-1, help="GPU id, or -1 for CPU")
    return p.parse_known_args(argv)


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
    with tempfile.TemporaryDirectory() as tmp:
        # The student is initialized with the teacher's labels (a labels
        # file, as `spacy init labels` writes them).
        labels_path = Path(tmp) / f"{args.component}.json"
        labels_path.write_text(json.dumps(list(teacher.labels)), encoding="utf8")
        with show_validation_error(args.config, hint_fill=False):
            config = load_config(args.config, overrides=overrides, interpolate=False)
            if args.component not in config["nlp"]["pipeline"]:
                return fail(f"the config's pipeline has no component {args.component!r}")
            config["initialize"].setdefault("components", {})[args.component] = {
                "labels": {"@readers": "spacy.read_labels.v1", "path": str(labels_path)}
            }
            nlp = init_nlp(config, use_gpu=args.gpu_id)
        student = nlp.get_pipe(args.component)
        if not isinstance(student, RNNEntityRecognizer):
            return fail(f"the config's {args.component!r} is not an rnn_ner component")
        if list(student.labels) != list(teacher.labels):
            return fail(f"the student's labels {list(student.labels)} are not the teacher's "
                        f"{list(teacher.labels)}")
        if args.output is not None:
            args.output.mkdir(parents=True, exist_ok=True)
        # spaCy's loop calls update() on each component: for this one, distill.
        student.update = partial(student.distill, teacher, teacher_weight=args.teacher_weight)
        try:
            train_nlp(nlp, args.output, use_gpu=args.gpu_id, stdout=sys.stdout, stderr=sys.stderr)
        finally:
            del student.update
    return 0
