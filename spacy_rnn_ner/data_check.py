"""Entity statistics of training data for an `rnn_ner` component: what
`spacy debug data` reports for a component named `ner` (it skips `rnn_ner`).
"""
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List

from spacy.training import Example

# spaCy's debug data warns about labels with at most this many examples.
LOW_COUNT = 50


@dataclass
class EntityStats:
    """Counts over one corpus, on the tokens the pipeline's tokenizer makes
    (the ones the component learns from)."""

    docs: int = 0
    tokens: int = 0
    # Docs whose reference has no entity annotation at all (no loss).
    unannotated_docs: int = 0
    # Gold entities per label.
    labels: Counter = field(default_factory=Counter)
    # Gold tokens with missing annotation ("-": partial annotation, no loss).
    missing_tokens: int = 0
    # Gold entities whose start or end falls inside a token the pipeline's
    # tokenizer makes: their tokens get no gold tag (no loss).
    misaligned_ents: int = 0
    # Gold entities that start or end on a whitespace token, or contain one.
    whitespace_edge_ents: int = 0
    whitespace_inner_ents: int = 0


def entity_stats(examples: Iterable[Example]) -> EntityStats:
    """Count entity labels and annotation problems in `examples`."""
    stats = EntityStats()
    for eg in examples:
        stats.docs += 1
        stats.tokens += len(eg.predicted)
        gold = eg.reference
        if not gold.has_annotation("ENT_IOB"):
            stats.unannotated_docs += 1
            continue
        stats.missing_tokens += int((gold.to_array("ENT_IOB") == 0).sum())
        starts = {t.idx for t in eg.predicted}
        ends = {t.idx + len(t) for t in eg.predicted}
        for ent in gold.ents:
            stats.labels[ent.label_] += 1
            if ent.start_char not in starts or ent.end_char not in ends:
                stats.misaligned_ents += 1
            if ent[0].is_space or ent[-1].is_space:
                stats.whitespace_edge_ents += 1
            elif any(token.is_space for token in ent):
                stats.whitespace_inner_ents += 1
    return stats


def label_problems(
    train: EntityStats, dev: EntityStats, model_labels: Iterable[str]
) -> Dict[str, List[str]]:
    """Labels worth a warning: in dev but not in train, with few training
    examples, new to a model that already has labels, or the model's but
    absent from train."""
    model = set(model_labels)
    return {
        "dev_not_train": sorted(set(dev.labels) - set(train.labels)),
        "low_count": sorted(l for l, n in train.labels.items() if n <= LOW_COUNT),
        "new_to_model": sorted(set(train.labels) - model) if model else [],
        "model_not_in_train": sorted(model - set(train.labels)),
    }
