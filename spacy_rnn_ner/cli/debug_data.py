"""`python -m spacy_rnn_ner debug-data CONFIG [--component rnn_ner]
[--paths.train X --paths.dev Y ...]`: entity label counts and annotation
problems of the training config's corpora, for an `rnn_ner` component
(`spacy debug data` only checks a component named `ner`)."""
import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from spacy import util
from spacy.cli._util import parse_config_overrides
from spacy.schemas import ConfigSchemaTraining
from spacy.util import registry, resolve_dot_names

from ..data_check import LOW_COUNT, EntityStats, entity_stats, label_problems
from ._util import fail


def parse_args(argv: Sequence[str]):
    parser = argparse.ArgumentParser(
        prog="python -m spacy_rnn_ner debug-data",
        description="Entity statistics of the corpora of a training config with an "
        "rnn_ner component. Extra --section.key value arguments override the config, "
        "as for spacy train.",
    )
    parser.add_argument("config", type=Path, help="training config (.cfg)")
    parser.add_argument(
        "--component", "-c", default=None,
        help="component name (default: the first rnn_ner component)",
    )
    return parser.parse_known_args(argv)


def debug_data_cli(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command. RETURNS (int): 1 on errors (whitespace entities, no
    rnn_ner component, unreadable config), else 0."""
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.config.is_file():
        return fail(f"config not found: {args.config}")
    try:
        overrides = parse_config_overrides(list(extra))
        config = util.load_config(args.config, overrides=overrides)
        nlp = util.load_model_from_config(config)
        config = nlp.config.interpolate()
        T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
        train_corpus, dev_corpus = resolve_dot_names(config, [T["train_corpus"], T["dev_corpus"]])
        train = entity_stats(train_corpus(nlp))
        dev = entity_stats(dev_corpus(nlp))
    except Exception as e:  # config and corpus errors of every kind
        return fail(f"could not load the config or its corpora: {type(e).__name__}: {e}")
    name = args.component or next(
        (n for n in nlp.pipe_names if nlp.get_pipe_meta(n).factory == "rnn_ner"), None
    )
    if name is None or name not in nlp.pipe_names:
        return fail(f"no rnn_ner component in the pipeline {nlp.pipe_names}")
    model_labels = list(getattr(nlp.get_pipe(name), "labels", ()))
    for line in report(name, train, dev, model_labels):
        print(line)
    return 1 if train.whitespace_edge_ents or dev.whitespace_edge_ents else 0


def report(name: str, train: EntityStats, dev: EntityStats, model_labels: List[str]) -> List[str]:
    """The lines the command prints."""
    lines = [f"Entities for component '{name}'"]
    for corpus, s in (("train", train), ("dev", dev)):
        lines += [
            f"{corpus}: {s.docs} docs, {s.tokens} tokens, {sum(s.labels.values())} entities",
            "  labels: " + (", ".join(f"{l} {n}" for l, n in s.labels.most_common()) or "none"),
            f"  {s.unannotated_docs} docs without entity annotation (no loss)",
            f"  {s.missing_tokens} tokens with missing annotation '-' (partial annotation, no loss)",
            f"  {s.misaligned_ents} entities whose boundaries the tokenizer does not "
            f"match (their tokens get no loss)",
            f"  {s.whitespace_edge_ents} entities starting or ending on whitespace (error), "
            f"{s.whitespace_inner_ents} containing whitespace tokens",
        ]
    problems = label_problems(train, dev, model_labels)
    if model_labels:
        lines.append(f"model labels: {', '.join(model_labels)}")
    notes = {
        "dev_not_train": "labels in dev but not in train",
        "low_count": f"labels with at most {LOW_COUNT} training entities",
        "new_to_model": "labels new to the model (add_label; they start masked until trained)",
        "model_not_in_train": "model labels absent from train (may degrade after training)",
    }
    for key, text in notes.items():
        if problems[key]:
            lines.append(f"warning: {text}: {', '.join(problems[key])}")
    return lines


