"""`python -m spacy_rnn_ner ensemble MODEL MODEL [MODEL ...] --output OUT`:
join trained pipelines (e.g. one config trained with several seeds) into one
whose `rnn_ner` averages them (`spacy-rnn-ner.EnsembleCRFTagger.v1`)."""
import argparse
import sys
from typing import Optional, Sequence

import spacy

from ..ensemble import join_pipelines
from ._util import fail

DESCRIPTION = """\
Join the rnn_ner components of two or more trained pipelines into one
pipeline (the first one's, with its other components and settings) whose
rnn_ner decodes the mean of the members' emission and CRF scores. The members
need the same labels and static vectors; each must have its own tok2vec.
Every member runs at inference, so the ensemble is slower than one model.
Refit its temperature on dev afterwards (python -m spacy_rnn_ner calibrate)."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m spacy_rnn_ner ensemble", description=DESCRIPTION)
    p.add_argument("models", nargs="+", help="trained pipeline directories or package names")
    p.add_argument("--output", "-o", required=True, help="directory for the joined pipeline")
    p.add_argument("--component", "-c", default="rnn_ner", help="component name (default rnn_ner)")
    return p.parse_args(argv)


def ensemble_cli(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command. RETURNS (int): the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if len(args.models) < 2:
        return fail(f"need at least 2 pipelines to join, got {len(args.models)}")
    pipelines = []
    for model in args.models:
        try:
            pipelines.append(spacy.load(model))
        except (OSError, ValueError) as e:
            return fail(f"could not load the pipeline {model}: {e}")
    try:
        nlp = join_pipelines(pipelines, args.component)
    except ValueError as e:
        return fail(str(e))
    nlp.to_disk(args.output)
    print(f"saved an ensemble of {len(pipelines)} {args.component} models to {args.output}")
    return 0
