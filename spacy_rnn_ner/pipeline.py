"""The `rnn_ner` component: per-token BILUO tagging with a recurrent network,
decoded with constrained Viterbi into `doc.ents`."""
import math
import warnings
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy
from spacy import util
from spacy.errors import Errors
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import (
    Config,
    Model,
    Optimizer,
    set_dropout_rate,
)
from thinc.types import Floats2d

from .batching import begin_update_bucketed, has_listener, predict_bucketed
from .config_types import PositiveFloat, StrictBool, Threshold
from .crf import span_labels
from .decode import decode, sentence_breaks
from .distillation import teacher_student_loss
from .layers.vocab_embed import vocab_layers, build_vocab
from .losses import TagLoss, tag_loss_class
from .serialize import load_cfg, load_model, nonfinite_counts, read_file, stamp_labels
from .tags import is_missing, make_tags

default_model_config = """
[model]
@architectures = "spacy-rnn-ner.RNNTagger.v1"

[model.tok2vec]
@architectures = "spacy.Tok2Vec.v2"

[model.tok2vec.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 96
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
rows = [5000, 1000, 2500, 2500]
include_static_vectors = false

[model.tok2vec.encode]
@architectures = "spacy-rnn-ner.RNNEncoder.v1"
width = ${model.tok2vec.embed.width}
depth = 1
cell = "lstm"
bidirectional = true
dropout = 0.0
"""
DEFAULT_RNN_NER_MODEL = Config().from_str(default_model_config)["model"]

# Output bias of the tags of a label added to a trained model, until an update
# has gold entities of it (see `_resize_output`): exp() of it is exactly 0.
UNTRAINED_BIAS = -1e4


@Language.factory(
    "rnn_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": DEFAULT_RNN_NER_MODEL,
        "overwrite_ents": False,
        "spans_key": "rnn_ner",
        "threshold": None,
        "temperature": 1.0,
        "incorrect_spans_key": None,
        "scorer": {"@scorers": "spacy-rnn-ner.span_scorer.v1"},
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
    },
)
def make_rnn_ner(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    overwrite_ents: StrictBool,
    spans_key: Optional[str],
    threshold: Optional[Threshold],
    temperature: PositiveFloat,
    incorrect_spans_key: Optional[str],
    scorer: Optional[Callable],
) -> "RNNEntityRecognizer":
    """Create an `RNNEntityRecognizer`.

    model (Model[List[Doc], List[Floats2d]]): Per doc an (n_tokens, n_tags)
        array of tag probabilities; see `spacy-rnn-ner.RNNTagger.v1`.
    overwrite_ents (bool): Replace the entities already on the doc instead of
        keeping them and only adding non-overlapping ones.
    spans_key (Optional[str]): Key of the span group `doc.spans[spans_key]`
        that receives each predicted entity with its probability in
        `attrs["scores"]`; None to skip computing probabilities.
    threshold (Optional[float]): Recall mode: also put into the span group
        every other span whose probability is >= threshold (0 < t <= 1).
    temperature (float): Divides all chain scores before the probabilities
        are computed (calibration, e.g. fitted on dev data); the best path,
        and so `doc.ents`, does not change. 1.0 leaves them as trained.
    incorrect_spans_key (Optional[str]): As in spaCy's `ner`: the spans in
        `doc.spans[incorrect_spans_key]` of the reference docs are known NOT
        to be entities of their label (negative annotation), and training
        makes them improbable.
    scorer (Optional[Callable]): Defaults to `spacy-rnn-ner.span_scorer.v1`:
        spaCy's NER scores plus those of the span group (see scoring.py).
    """
    return RNNEntityRecognizer(
        nlp.vocab,
        model,
        name,
        overwrite_ents=overwrite_ents,
        spans_key=spans_key,
        threshold=threshold,
        temperature=temperature,
        incorrect_spans_key=incorrect_spans_key,
        scorer=scorer,
    )


class RNNEntityRecognizer(TrainablePipe):
    """Named entity recognizer that tags every token with a BILUO tag and
    decodes the best valid tag sequence with constrained Viterbi.

    The component's labels are entity types (e.g. "PER"); its tags are
    `make_tags(labels)`: "O", then B-, I-, L-, U- per label in sorted order.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats2d]],
        name: str = "rnn_ner",
        *,
        overwrite_ents: bool = False,
        spans_key: Optional[str] = "rnn_ner",
        threshold: Optional[float] = None,
        temperature: float = 1.0,
        incorrect_spans_key: Optional[str] = None,
        scorer: Optional[Callable] = get_ner_prf,
    ) -> None:
        """Initialize the component.

        vocab (Vocab): The shared vocabulary.
        model (Model[List[Doc], List[Floats2d]]): The tagging model; it must
            output softmax probabilities and have an "output_layer" ref.
        name (str): The component instance name, used as the key in losses.
        overwrite_ents (bool): Whether to replace existing `doc.ents`.
        spans_key (Optional[str]): Span group for the entities' probabilities.
        threshold (Optional[float]): Recall-mode threshold, or None.
        temperature (float): Divides the chain scores for the probabilities.
        incorrect_spans_key (Optional[str]): Span group of the reference docs
            with spans known not to be entities (negative annotation).
        scorer (Optional[Callable]): The scoring method.
        """
        self.vocab = vocab
        self.model = model
        self.name = name
        # Only the labels are in cfg: `overwrite_ents` comes from the config,
        # and a value in cfg would override it again on load.
        self.cfg: Dict[str, List[str]] = {"labels": []}
        self.overwrite_ents = overwrite_ents
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError(f"rnn_ner threshold must be in (0, 1] or null, got {threshold!r}")
        if threshold is not None and spans_key is None:
            raise ValueError("rnn_ner threshold needs a spans_key to store the spans in")
        if not temperature > 0.0:
            raise ValueError(f"rnn_ner temperature must be > 0, got {temperature!r}")
        self.spans_key = spans_key
        self.threshold = threshold
        self.temperature = temperature
        self.incorrect_spans_key = incorrect_spans_key
        self.scorer = scorer
        self._warned_labels: Set[str] = set()
        # The frozen copy `nlp.resume_training()` makes, for `rehearse`.
        self._rehearsal_model: Optional[Model] = None
        self._loss_class = tag_loss_class(model)

    @property
    def labels(self) -> Tuple[str, ...]:
        """RETURNS (Tuple[str]): The entity labels, sorted."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> Tuple[str, ...]:
        """RETURNS (Tuple[str]): The labels, as `spacy init labels` saves them."""
        return self.labels

    @property
    def tags(self) -> List[str]:
        """RETURNS (List[str]): The BILUO tags, one per output column."""
        return make_tags(self.labels)

    def add_label(self, label: str) -> int:
        """Add an entity label. On an initialized model the output layer grows
        by the label's four tags: the weights of existing tags are kept, as in
        spaCy's resizable components, and the new tags are masked (they get
        probability 0), so that predictions and scores stay as they were until
        an update has gold entities of the label.

        label (str): The entity type, e.g. "PER".
        RETURNS (int): 0 if the label is already present, otherwise 1.
        """
        if not isinstance(label, str) or not label:
            raise ValueError(Errors.E187)
        if label in self.labels:
            return 0
        old_labels, old_tags = list(self.labels), self.tags
        self.cfg["labels"] = sorted(old_labels + [label])
        try:
            self._resize_output(old_tags)
        except Exception:
            self.cfg["labels"] = old_labels
            raise
        self.vocab.strings.add(label)
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Initialize the component for training.

        get_examples (Callable[[], Iterable[Example]]): Returns a representative
            sample of gold-standard examples.
        nlp (Optional[Language]): The pipeline the component is part of.
        labels (Optional[Sequence[str]]): Entity labels, e.g. from `spacy init
            labels`. If None, the labels of the reference entities are used.
        """
        validate_get_examples(get_examples, "RNNEntityRecognizer.initialize")
        util.check_lexeme_norms(self.vocab, "rnn_ner")
        if labels is not None:
            for label in labels:
                self.add_label(label)
        else:
            for eg in get_examples():
                for ent in eg.reference.ents:
                    self.add_label(ent.label_)
        self._require_labels()
        # Word vocabularies (WordCharEmbed.v2) come from all training docs,
        # also those of a shared tok2vec this component listens to.
        models = [self.model]
        for _, proc in nlp.pipeline if nlp is not None else []:
            if self.name in getattr(proc, "listener_map", {}):
                models.append(proc.model)
        for layer in (node for model in models for node in vocab_layers(model)):
            build_vocab(layer, (eg.x for eg in get_examples()))
        docs = [eg.x for eg in islice(get_examples(), 10)]
        # Y only tells the output layer its width.
        Y = [self.model.ops.alloc2f(len(doc), len(self.tags)) for doc in docs]
        self.model.initialize(X=docs, Y=Y)

    def predict(self, docs: Iterable[Doc]) -> List[Floats2d]:
        """Score every token of every doc over `self.tags`, without modifying
        the docs.

        docs (Iterable[Doc]): The documents.
        RETURNS (List[Floats2d]): Per doc an (n_tokens, n_tags) array of
            probabilities.
        """
        # In buckets of similar length (see batching.py), so that one long doc
        # doesn't pad every other doc of the batch to its length. Empty docs
        # don't reach the model (which may not even be initialized).
        return predict_bucketed(self.model, list(docs), len(self.tags))

    def set_annotations(self, docs: Iterable[Doc], scores: List[Floats2d]) -> None:
        """Set `doc.ents` from the best valid BILUO sequence of each doc.

        Unless `overwrite_ents`, the entities already on a doc and its blocked
        tokens are kept, new entities never overlap them, and every other
        token is set to "O" (not missing). Where the doc's sentence starts
        are set (by a parser, a senter or the input), no new entity crosses
        one.

        With a `spans_key`, `doc.spans[spans_key]` holds the new entities
        (and, with a `threshold`, every other span at least that probable),
        with their marginal probabilities in `attrs["scores"]`.

        docs (Iterable[Doc]): The documents to modify.
        scores (List[Floats2d]): The scores from `predict`.
        """
        if isinstance(docs, Doc):
            docs = [docs]
        docs = list(docs)
        tags = self.tags
        xp = self.model.ops.xp
        forbid = None if self.overwrite_ents else [_preset_tokens(doc) for doc in docs]
        loss = self.loss
        emissions = loss.emissions(scores)
        chain = loss.chain()
        active = self._trained_tag_indices()
        if len(active) < len(tags):
            # Decode over the trained tags only: the masked ones have
            # probability 0 anyway, and leaving them out keeps the sums of the
            # chain, and so the scores, exactly as before `add_label`.
            emissions = [e[:, active] for e in emissions]
            chain = chain.select(active)
        if self.temperature != 1.0:
            # Scaling every score alike keeps the best path; it only
            # sharpens or flattens the probabilities.
            emissions = [e / self.temperature for e in emissions]
            chain = chain.with_temperature(self.temperature)
        decoded = decode(
            xp,
            chain,
            docs,
            emissions,
            forbid,
            [sentence_breaks(doc) for doc in docs],
            with_probs=self.spans_key is not None,
            threshold=self.threshold,
        )
        labels = span_labels(chain.tags)
        for doc, result in zip(docs, decoded):
            if self.overwrite_ents:
                doc.set_ents(result.spans, default="outside")
            else:
                ents = list(doc.ents) + result.spans
                doc.set_ents(ents, blocked=_blocked_spans(doc), default="outside")
            if self.spans_key is not None:
                spans = list(result.spans) + [
                    Span(doc, start, end, label=labels[label])
                    for start, end, label, _ in result.alternatives
                ]
                probs = result.probs.tolist() + [p for *_, p in result.alternatives]
                order = sorted(range(len(spans)), key=lambda i: (spans[i].start, spans[i].end))
                group = SpanGroup(doc, name=self.spans_key, spans=[spans[i] for i in order])
                group.attrs["scores"] = numpy.asarray([probs[i] for i in order], dtype="f")
                doc.spans[self.spans_key] = group

    @property
    def loss(self) -> TagLoss:
        """The objective over the current tags (the kind of which was chosen
        from the model when the component was built)."""
        return self._loss_class(self.model, self.tags)

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, object]:
        """Score a batch of examples with `self.scorer`, which also gets the
        span group's key (it is a setting, not in `cfg`).
        """
        kwargs.setdefault("spans_key", self.spans_key)
        return super().score(examples, **kwargs)

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples.

        examples (Iterable[Example]): The batch.
        drop (float): The dropout rate.
        sgd (Optional[Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): Losses so far, by component name.
        RETURNS (Dict[str, float]): The updated losses.
        """
        examples = _validated(examples, "RNNEntityRecognizer.update")
        self._unmask_labels({ent.label_ for eg in examples for ent in eg.reference.ents})

        def get_loss(docs: List[Doc], scores: List[Floats2d]) -> Tuple[List[Floats2d], float]:
            loss, d_scores = self._get_loss(examples, scores, is_train=True)
            return d_scores, loss

        return self._step(examples, get_loss, drop=drop, sgd=sgd, losses=losses)

    def distill(
        self,
        teacher_pipe: "RNNEntityRecognizer",
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
        teacher_weight: float = 1.0,
    ) -> Dict[str, float]:
        """Train this component (the student) to tag like `teacher_pipe`, as
        spaCy v4's `TrainablePipe.distill`: the teacher scores each example's
        reference doc, the student its predicted doc (the same tokens), and
        the loss is the structure-level KL divergence of the student's chain
        from the teacher's (see distillation.py).

        With `teacher_weight` below 1, docs with entity annotation learn
        `teacher_weight * KL + (1 - teacher_weight) * gold loss`; docs without
        any (raw text, e.g. `Example(doc, doc)`) learn the KL term alone.

        teacher_pipe (RNNEntityRecognizer): The teacher, e.g. the `rnn_ner` of
            a pipeline joined by the `ensemble` command; same labels.
        examples (Iterable[Example]): The batch.
        drop (float): The dropout rate (of the student).
        sgd (Optional[Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): Losses so far, by component name.
        teacher_weight (float): The KL term's weight for annotated docs, in
            [0, 1]; 1 ignores the gold annotation.
        RETURNS (Dict[str, float]): The updated losses.
        """
        if not 0.0 <= teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight must be in [0, 1], got {teacher_weight!r}")
        examples = _validated(examples, "RNNEntityRecognizer.distill")
        self._check_teacher(teacher_pipe)
        for i, eg in enumerate(examples):
            if len(eg.reference) != len(eg.predicted):
                raise ValueError(
                    f"distill: example {i} has {len(eg.predicted)} predicted and "
                    f"{len(eg.reference)} reference tokens; teacher and student must "
                    f"see the same tokens"
                )
        truths = self._gold_tags(examples)
        labelled = [any(t is not None for t in doc_truths) for doc_truths in truths]
        if teacher_weight < 1.0:
            self._unmask_labels({ent.label_ for eg in examples for ent in eg.reference.ents})

        def get_loss(docs: List[Doc], scores: List[Floats2d]) -> Tuple[List[Floats2d], float]:
            self._check_scores(scores)
            teacher_docs = [_in_vocab(eg.reference, teacher_pipe.vocab) for eg in examples]
            teacher_scores = predict_bucketed(teacher_pipe.model, teacher_docs, len(self.tags))
            weights = [teacher_weight if lab else 1.0 for lab in labelled]
            kl = teacher_student_loss(teacher_pipe.loss, teacher_scores, self.loss, scores,
                                      weights=weights)
            d_scores, loss, d_params = kl.d_scores, kl.loss, kl.d_params
            gold_weight = 1.0 - teacher_weight
            rows = [i for i, lab in enumerate(labelled) if lab]
            if gold_weight > 0.0 and rows:
                d_gold, gold_loss, gold_params = self.loss.gold_loss(
                    [scores[i] for i in rows], [truths[i] for i in rows]
                )
                loss += gold_weight * gold_loss
                for i, d in zip(rows, d_gold):
                    d_scores[i] = d_scores[i] + gold_weight * d
                d_params = [p + gold_weight * g for p, g in zip(d_params, gold_params)] or d_params
            self.loss.inc_chain_grads(d_params)
            return d_scores, loss

        return self._step(examples, get_loss, drop=drop, sgd=sgd, losses=losses)

    def get_teacher_student_loss(
        self,
        teacher_scores: List[Floats2d],
        student_scores: List[Floats2d],
        *,
        teacher_pipe: Optional["RNNEntityRecognizer"] = None,
    ) -> Tuple[float, List[Floats2d]]:
        """The structure-level KL divergence of this component's chain from
        the teacher's, and its gradient for `student_scores`, as spaCy v4's
        `get_teacher_student_loss`. Without `teacher_pipe` the teacher is
        taken to be a tagger like this one (its scores read as this
        component reads its own, with the same chain scores).

        teacher_scores (List[Floats2d]): The teacher model's scores per doc.
        student_scores (List[Floats2d]): This model's scores for the same docs.
        teacher_pipe (Optional[RNNEntityRecognizer]): The teacher component.
        RETURNS (Tuple[float, List[Floats2d]]): The loss and d_student_scores.
        """
        teacher_loss = self.loss if teacher_pipe is None else teacher_pipe.loss
        if teacher_pipe is not None:
            self._check_teacher(teacher_pipe)
        kl = teacher_student_loss(teacher_loss, teacher_scores, self.loss, student_scores)
        return kl.loss, kl.d_scores

    def _check_teacher(self, teacher_pipe: object) -> None:
        if not isinstance(teacher_pipe, RNNEntityRecognizer):
            raise ValueError(
                f"the teacher must be an rnn_ner component, not {type(teacher_pipe).__name__}"
            )
        if list(teacher_pipe.labels) != list(self.labels):
            raise ValueError(
                f"the teacher's labels {list(teacher_pipe.labels)} differ from the "
                f"student's {list(self.labels)}: distillation needs the same labels"
            )
        if has_listener(teacher_pipe.model):
            raise ValueError(
                "the teacher's rnn_ner listens to a shared tok2vec component, which only "
                "runs inside its own pipeline: distill needs a teacher with its own tok2vec"
            )

    def rehearse(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Teach the model to score like the copy `nlp.resume_training()` made
        of it, against catastrophic forgetting, as spaCy's Tagger does: the
        gradient is the difference of the scores (per token, normalised by the
        batch's tokens), and, for a CRF, of the transition scores. Does nothing
        without a rehearsal model.

        examples (Iterable[Example]): A batch; only the predicted docs are used.
        drop (float): The dropout rate.
        sgd (Optional[Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): Losses so far, by component name.
        RETURNS (Dict[str, float]): The updated losses: the summed squared
            differences.
        """
        examples = _validated(examples, "RNNEntityRecognizer.rehearse")
        tutor = self._rehearsal_model
        if tutor is None:
            examples = []

        def get_loss(docs: List[Doc], scores: List[Floats2d]) -> Tuple[List[Floats2d], float]:
            # The tutor predicts (no dropout): its scores are the target.
            targets = predict_bucketed(tutor, docs, len(self.tags))
            return self.loss.get_rehearsal_loss(scores, targets, tutor, is_train=True)

        return self._step(examples, get_loss, drop=drop, sgd=sgd, losses=losses)

    def _step(
        self,
        examples: List[Example],
        get_loss: Callable[[List[Doc], List[Floats2d]], Tuple[List[Floats2d], float]],
        *,
        drop: float,
        sgd: Optional[Optimizer],
        losses: Optional[Dict[str, float]],
    ) -> Dict[str, float]:
        """What `update` and `rehearse` share, in spancat's order: dropout,
        forward (in length buckets), `get_loss(docs, scores) -> (d_scores,
        loss)`, backprop, optimizer step. Nothing happens without tokens."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        docs = [eg.predicted for eg in examples]
        if not any(len(doc) for doc in docs):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop_scores = begin_update_bucketed(self.model, docs, len(self.tags))
        d_scores, loss = get_loss(docs, scores)
        backprop_scores(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(
        self, examples: Iterable[Example], scores: List[Floats2d]
    ) -> Tuple[float, List[Floats2d]]:
        """The loss against the gold BILUO tags: categorical cross-entropy for
        a softmax tagger (reported as the sum of squared gradients, as spaCy's
        Tagger does), the negative log-likelihood for a CRF tagger. Tokens
        whose gold tag is missing add no loss (a CRF marginalises over their
        tags), and so do tokens of an entity type the component doesn't know
        (warned about once per label): annotation it can't learn from. With
        an `incorrect_spans_key`, each of those spans adds -log(1 - P(span |
        gold)), its probability under the constrained chain (see losses.py).

        examples (Iterable[Example]): The batch.
        scores (List[Floats2d]): The scores from the model.
        RETURNS (Tuple[float, List[Floats2d]]): The loss and d_scores.
        """
        return self._get_loss(examples, scores, is_train=False)

    def _get_loss(
        self, examples: Iterable[Example], scores: List[Floats2d], *, is_train: bool
    ) -> Tuple[float, List[Floats2d]]:
        """`get_loss`; with `is_train`, the loss also adds the gradients of
        its own parameters (a CRF's) to the model."""
        examples = _validated(examples, "RNNEntityRecognizer.get_loss")
        truths = self._gold_tags(examples)
        negatives = self._negative_spans(examples)
        self._check_scores(scores)
        d_scores, loss = self.loss.get_loss(
            scores, truths, negatives=negatives, is_train=is_train
        )
        if not math.isfinite(loss):
            raise ValueError(
                f"Component '{self.name}': the training loss is not finite ({loss}): "
                f"the model's scores contain NaN or inf. Lower the learning rate, "
                f"check the input vectors, or enable gradient clipping. "
                f"({Errors.E910.format(name=self.name)})"
            )
        return loss, d_scores

    def _check_scores(self, scores: List[Floats2d]) -> None:
        """Raise if the scores aren't finite. Checked before the loss: thinc's
        cross-entropy rejects inf with an error that names neither the
        component nor the cause, and a NaN on a token with missing gold would
        otherwise only show in the loss."""
        xp = self.model.ops.xp
        for i, doc_scores in enumerate(scores):
            counts = nonfinite_counts(xp, doc_scores)
            if counts is not None:
                n_nan, n_inf = counts
                e910 = f" ({Errors.E910.format(name=self.name)})" if n_nan else ""
                raise ValueError(
                    f"Component '{self.name}': the model's scores are not finite "
                    f"({n_nan} NaN, {n_inf} inf in doc {i} of the batch): training "
                    f"has diverged or the input vectors are broken. Lower the "
                    f"learning rate or enable gradient clipping.{e910}"
                )

    def _negative_spans(self, examples: List[Example]) -> Optional[List[List[Tuple[int, int, str]]]]:
        """Per example the spans of `doc.spans[incorrect_spans_key]` of the
        reference, as (start, end, label) on the predicted tokens; None
        without the setting. Spans of labels the component doesn't have are
        left out (it can't predict them). As spaCy's `ner`, a span that is
        also a gold entity is an error (E868)."""
        key = self.incorrect_spans_key
        if key is None:
            return None
        labels = set(self.labels)
        negatives = []
        for eg in examples:
            spans = list(eg.reference.spans[key]) if key in eg.reference.spans else []
            gold = {(ent.start_char, ent.end_char, ent.label) for ent in eg.reference.ents}
            for span in spans:
                if (span.start_char, span.end_char, span.label) in gold:
                    span_info = (span.start_char, span.end_char, span.label_)
                    raise ValueError(Errors.E868.format(span=span_info))
            aligned = eg.get_aligned_spans_y2x(spans, allow_overlap=True)
            negatives.append([(s.start, s.end, s.label_) for s in aligned if s.label_ in labels])
        return negatives

    def _gold_tags(self, examples: List[Example]) -> List[List[Optional[str]]]:
        """Gold BILUO tags per token, None where missing or of an unknown label."""
        known = set(self.tags)
        truths = []
        for eg in examples:
            eg_truths: List[Optional[str]] = []
            for tag in eg.get_aligned_ner():
                if is_missing(tag):
                    eg_truths.append(None)
                elif tag in known:
                    eg_truths.append(tag)
                else:
                    self._warn_unknown_label(tag.split("-", 1)[-1])
                    eg_truths.append(None)
            truths.append(eg_truths)
        return truths

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()
    ) -> "RNNEntityRecognizer":
        """Load the component from a bytestring. The labels in cfg are loaded
        first, so that the output layer has the saved width before the model
        is loaded.
        """
        self._validate_serialization_attrs()
        old_tags = self.tags
        deserialize = {
            "cfg": lambda b: self.cfg.update(load_cfg(b, name=self.name, source="bytes")),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "model": lambda b: self._load_model(b, old_tags, "bytes"),
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        return self

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()
    ) -> "RNNEntityRecognizer":
        """Load the component from a directory, labels before model."""
        self._validate_serialization_attrs()
        old_tags = self.tags
        deserialize = {
            "cfg": lambda p: self.cfg.update(
                load_cfg(read_file(p, self.name), name=self.name, source=p)
            ),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: self._load_model(read_file(p, self.name), old_tags, p),
        }
        util.from_disk(path, deserialize, exclude)
        return self

    def _warn_unknown_label(self, label: str) -> None:
        if label not in self._warned_labels:
            self._warned_labels.add(label)
            warnings.warn(
                f"Component '{self.name}' has no entity label {label!r}: gold "
                f"entities of this type are treated as missing annotation (no "
                f"loss). Add the label to learn it.",
                UserWarning,
            )

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """Serialize the component; the model carries its labels."""
        stamp_labels(self.model, self.labels)
        return super().to_bytes(exclude=exclude)

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        """Save the component to a directory; the model carries its labels."""
        stamp_labels(self.model, self.labels)
        super().to_disk(path, exclude=exclude)

    def finish_update(self, sgd: Optimizer) -> None:
        """Update the weights with the gradients accumulated since the last
        call, once they are known to be finite: one NaN or inf gradient would
        make every weight it reaches NaN in this step. Non-finite gradients
        are discarded, and an error names the first parameter affected.

        sgd (Optimizer): The optimizer.
        """
        xp = self.model.ops.xp
        grads = [(node, name) for node in self.model.walk() for name in node.grad_names]
        for node, name in grads:
            counts = nonfinite_counts(xp, node.get_grad(name))
            if counts is None:
                continue
            for other, other_name in grads:
                other.get_grad(other_name).fill(0)
            n_nan, n_inf = counts
            raise ValueError(
                f"Component '{self.name}': the gradient of parameter '{name}' of "
                f"layer '{node.name}' is not finite ({n_nan} NaN, {n_inf} inf), so the "
                f"weights were not updated and the gradients were discarded. "
                f"Training has diverged: lower the learning rate or enable "
                f"gradient clipping. ({Errors.E910.format(name=self.name)})"
            )
        super().finish_update(sgd)

    def _load_model(self, data: bytes, old_tags: List[str], source: object) -> None:
        """Give the output the width of the labels loaded into cfg, then load
        the weights (see serialize.py for the checks)."""
        self._resize_output(old_tags)
        load_model(self.model, data, labels=self.labels, name=self.name, source=source)

    def _trained_tag_indices(self) -> List[int]:
        """Indices of the tags that aren't masked (see `_resize_output`)."""
        output = self.model.maybe_get_ref("output_layer")
        if output is None or not output.has_param("b"):
            return list(range(len(self.tags)))
        b = self.model.ops.to_numpy(output.get_param("b"))
        return [i for i, bias in enumerate(b.tolist()) if bias > UNTRAINED_BIAS / 2]

    def _unmask_labels(self, labels: Set[str]) -> None:
        """Start training the masked tags of `labels` (see `_resize_output`)
        from a zero bias, the init of a label trained from the start."""
        output = self.model.maybe_get_ref("output_layer")
        if output is None or not output.has_param("b"):
            return
        b = output.get_param("b")
        rows = [i for i, tag in enumerate(self.tags) if tag.partition("-")[2] in labels]
        masked = [i for i in rows if b[i] <= UNTRAINED_BIAS / 2]
        if masked:
            b[masked] = 0.0
            output.set_param("b", b)

    def _resize_output(self, old_tags: List[str]) -> None:
        """Give the output layer (and the CRF, if any) one row per tag in
        `self.tags`, keeping the weights of tags that were in `old_tags`. Tags
        are in sorted-label order, so a new label can land in the middle:
        weights are moved by tag name.

        Like spaCy's `resize_output` (textcat, parser) we keep the old weights
        and give the new rows zero weights; unlike textcat's independent
        logistic outputs, our tags share one softmax (or one CRF chain), so a
        new tag at logit 0 would take probability from the trained ones and
        change predictions of a label never trained. The new rows' bias is
        therefore UNTRAINED_BIAS: their probability is exactly 0 and their
        gradient 0 (so training on other labels keeps them masked), and
        `update` resets it to 0 once a batch has gold entities of the label.
        A bias that is merely low would not do: Adam moves a parameter by
        about the learning rate per step, so the label could never catch up.
        """
        new_tags = self.tags
        if new_tags == old_tags:
            return
        old_index = {tag: i for i, tag in enumerate(old_tags)}
        rows = [old_index.get(tag) for tag in new_tags]
        resize_output = self.model.attrs.get("resize_output")
        if resize_output is not None:
            self.model = resize_output(self.model, rows, new_bias=UNTRAINED_BIAS)
            return
        output = self.model.maybe_get_ref("output_layer")
        if output is not None and output.has_param("W"):
            raise ValueError(
                f"Component '{self.name}' can't add labels to its trained model: the "
                f"architecture sets no model.attrs['resize_output'] (see "
                f"`spacy_rnn_ner.architectures.resize_tagger_output`)."
            )


def _validated(examples: Iterable[Example], method: str) -> List[Example]:
    examples = list(examples)
    validate_examples(examples, method)
    return examples


def _in_vocab(doc: Doc, vocab: Vocab) -> Doc:
    """`doc`, or a copy of its words and spaces in `vocab` (another
    pipeline's, whose vectors and strings the doc must use there)."""
    if doc.vocab is vocab:
        return doc
    return Doc(vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])


def _preset_tokens(doc: Doc) -> numpy.ndarray:
    """Tokens in an existing entity or blocked: they must stay "O" for us."""
    iob = doc.to_array("ENT_IOB")
    return (iob == 1) | (iob == 3)


def _blocked_spans(doc: Doc) -> List[Span]:
    """Blocked tokens (B with no entity type) as one-token spans."""
    iob = doc.to_array("ENT_IOB")
    ent_type = doc.to_array("ENT_TYPE")
    return [doc[i : i + 1] for i in numpy.flatnonzero((iob == 3) & (ent_type == 0))]
