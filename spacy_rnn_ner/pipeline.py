"""The `rnn_ner` component: per-token BILUO tagging with a recurrent network,
decoded with constrained Viterbi into `doc.ents`."""
import math
import warnings
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy
import srsly
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
    SequenceCategoricalCrossentropy,
    set_dropout_rate,
)
from thinc.layers.resizable import resize_linear_weighted
from thinc.types import Floats1d, Floats2d

from . import crf
from .batching import begin_update_bucketed, length_buckets, predict_bucketed
from .crf import span_labels
from .decode import decode
from .layers.crf_layer import CRF
from .tags import make_tags

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

# Probabilities are clipped to this before the log, so that a softmax that
# underflows to 0 gives a very low but finite score.
MIN_PROB = 1e-30
# Gold tags that mean "no annotation": no loss for these tokens.
MISSING_TAGS = (None, "", "-")
# Model attr that saves the labels with the weights (a JSON list), so that a
# cfg whose labels were renamed can't silently relabel the entities.
LABELS_ATTR = "rnn_ner_labels"
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
    overwrite_ents: bool,
    spans_key: Optional[str],
    threshold: Optional[float],
    temperature: float,
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
        self.scorer = scorer
        self._warned_labels: Set[str] = set()
        # The frozen copy `nlp.resume_training()` makes, for `rehearse`.
        self._rehearsal_model: Optional[Model] = None

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
        old_tags = self.tags
        self.cfg["labels"] = sorted(self.labels + (label,))
        self.vocab.strings.add(label)
        self._resize_output(old_tags)
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
        token is set to "O" (not missing).

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
        emissions = self._emissions(scores)
        chain_params = self._transition_scores()
        active = self._trained_tag_indices()
        if len(active) < len(tags):
            # Decode over the trained tags only: the masked ones have
            # probability 0 anyway, and leaving them out keeps the sums of the
            # chain, and so the scores, exactly as before `add_label`.
            tags = [tags[i] for i in active]
            emissions = [e[:, active] for e in emissions]
            trans, start, end = chain_params
            chain_params = (trans[active][:, active], start[active], end[active])
        if self.temperature != 1.0:
            # Scaling every score alike keeps the best path; it only
            # sharpens or flattens the probabilities.
            emissions = [e / self.temperature for e in emissions]
            chain_params = tuple(p / self.temperature for p in chain_params)
        decoded = decode(
            xp,
            docs,
            emissions,
            tags,
            *chain_params,
            forbid,
            with_probs=self.spans_key is not None,
            threshold=self.threshold,
        )
        labels = span_labels(tags)
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

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, object]:
        """Score a batch of examples with `self.scorer`, which also gets the
        span group's key (it is a setting, not in `cfg`).
        """
        kwargs.setdefault("spans_key", self.spans_key)
        return super().score(examples, **kwargs)

    def _emissions(self, scores: List[Floats2d]) -> List[Floats2d]:
        """Per-token scores for the chain: a CRF tagger's own scores, or the
        log of a softmax tagger's probabilities."""
        if self.model.has_ref("crf"):
            return scores
        xp = self.model.ops.xp
        return [xp.log(xp.clip(s, MIN_PROB, 1.0)) for s in scores]

    def _transition_scores(self) -> Tuple[Floats2d, Floats1d, Floats1d]:
        """(transitions, start, end) of the CRF, or zeros for a softmax tagger
        (the BILUO constraints apply either way)."""
        if self.model.has_ref("crf"):
            crf_layer = self.model.get_ref("crf")
            return tuple(crf_layer.get_param(n) for n in ("transitions", "start", "end"))
        n_tags = len(self.tags)
        ops = self.model.ops
        return ops.alloc2f(n_tags, n_tags), ops.alloc1f(n_tags), ops.alloc1f(n_tags)

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
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "RNNEntityRecognizer.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        self._unmask_labels({ent.label_ for eg in examples for ent in eg.reference.ents})
        set_dropout_rate(self.model, drop)
        docs = [eg.predicted for eg in examples]
        scores, backprop_scores = begin_update_bucketed(self.model, docs, len(self.tags))
        loss, d_scores, d_crf = self._loss_and_gradients(examples, scores)
        backprop_scores(d_scores)
        if d_crf is not None:
            crf_layer = self.model.get_ref("crf")
            for name, grad in d_crf.items():
                crf_layer.inc_grad(name, grad)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

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
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "RNNEntityRecognizer.rehearse")
        docs = [eg.predicted for eg in examples]
        n_tokens = sum(len(doc) for doc in docs)
        if self._rehearsal_model is None or not n_tokens:
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop_scores = begin_update_bucketed(self.model, docs, len(self.tags))
        # The tutor predicts (no dropout): its scores are the target.
        targets = predict_bucketed(self._rehearsal_model, docs, len(self.tags))
        d_scores = [(s - t) / n_tokens for s, t in zip(scores, targets)]
        loss = sum(float((d**2).sum()) for d in d_scores)
        backprop_scores(d_scores)
        if self.model.has_ref("crf") and self._rehearsal_model.has_ref("crf"):
            crf_layer = self.model.get_ref("crf")
            tutor = self._rehearsal_model.get_ref("crf")
            for name in ("transitions", "start", "end"):
                d = crf_layer.get_param(name) - tutor.get_param(name)
                crf_layer.inc_grad(name, d)
                loss += float((d**2).sum())
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
        (warned about once per label): annotation it can't learn from.

        examples (Iterable[Example]): The batch.
        scores (List[Floats2d]): The scores from the model.
        RETURNS (Tuple[float, List[Floats2d]]): The loss and d_scores.
        """
        loss, d_scores, _ = self._loss_and_gradients(examples, scores)
        return loss, d_scores

    def _loss_and_gradients(
        self, examples: Iterable[Example], scores: List[Floats2d]
    ) -> Tuple[float, List[Floats2d], Optional[Dict[str, Floats2d]]]:
        """`get_loss`, plus the gradients of the CRF parameters (or None)."""
        examples = list(examples)
        validate_examples(examples, "RNNEntityRecognizer.get_loss")
        tags = self.tags
        truths = self._gold_tags(examples)
        # Checked before the loss: thinc's cross-entropy rejects inf with an
        # error that names neither the component nor the cause, and a NaN on
        # a token with missing gold would otherwise only show in the loss.
        for i, doc_scores in enumerate(scores):
            if not bool(self.model.ops.xp.isfinite(doc_scores).all()):
                n_nan = int(self.model.ops.xp.isnan(doc_scores).sum())
                n_inf = int(self.model.ops.xp.isinf(doc_scores).sum())
                e910 = f" ({Errors.E910.format(name=self.name)})" if n_nan else ""
                raise ValueError(
                    f"Component '{self.name}': the model's scores are not finite "
                    f"({n_nan} NaN, {n_inf} inf in doc {i} of the batch): training "
                    f"has diverged or the input vectors are broken. Lower the "
                    f"learning rate or enable gradient clipping.{e910}"
                )
        d_crf = None
        if self.model.has_ref("crf"):
            loss, d_scores, d_crf = self._crf_loss(scores, truths)
        else:
            loss_func = SequenceCategoricalCrossentropy(
                names=tags, normalize=False, missing_value=None
            )
            d_scores, loss = loss_func(scores, truths)
            loss = float(loss)
        if not math.isfinite(loss):
            raise ValueError(
                f"Component '{self.name}': the training loss is not finite ({loss}): "
                f"the model's scores contain NaN or inf. Lower the learning rate, "
                f"check the input vectors, or enable gradient clipping. "
                f"({Errors.E910.format(name=self.name)})"
            )
        return loss, d_scores, d_crf

    def _crf_loss(
        self, scores: List[Floats2d], truths: List[List[Optional[str]]]
    ) -> Tuple[float, List[Floats2d], Dict[str, Floats2d]]:
        """The CRF's negative log-likelihood, its gradients for the scores and
        for the CRF parameters; padded in length buckets (see batching.py)."""
        xp = self.model.ops.xp
        tags = self.tags
        chain_params = self._transition_scores()
        lengths = [int(s.shape[0]) for s in scores]
        d_scores = [self.model.ops.alloc2f(n, len(tags)) for n in lengths]
        d_crf = {name: xp.zeros_like(p) for name, p in zip(("transitions", "start", "end"), chain_params)}
        loss = 0.0
        for bucket in length_buckets(lengths):
            n_steps = lengths[bucket[0]]
            emissions = xp.zeros((len(bucket), n_steps, len(tags)), dtype="f")
            for row, i in enumerate(bucket):
                emissions[row, : lengths[i]] = scores[i]
            gold = crf.gold_mask_from_biluo([truths[i] for i in bucket], tags, xp, n_steps=n_steps)
            bucket_lengths = xp.asarray([lengths[i] for i in bucket], dtype="i")
            seq_losses, d_emissions, *d_params = crf.nll_and_grads(
                emissions, bucket_lengths, *chain_params, tags, gold, xp
            )
            loss += float(seq_losses.sum())
            for row, i in enumerate(bucket):
                d_scores[i] = d_emissions[row, : lengths[i]]
            for name, grad in zip(("transitions", "start", "end"), d_params):
                d_crf[name] += grad
        return loss, d_scores, d_crf

    def _gold_tags(self, examples: List[Example]) -> List[List[Optional[str]]]:
        """Gold BILUO tags per token, None where missing or of an unknown label."""
        known = set(self.tags)
        truths = []
        for eg in examples:
            eg_truths: List[Optional[str]] = []
            for tag in eg.get_aligned_ner():
                if tag in MISSING_TAGS:
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
            "cfg": lambda b: self._load_cfg(b, "bytes"),
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
            "cfg": lambda p: self._load_cfg(self._read_file(p), p),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: self._load_model(self._read_file(p), old_tags, p),
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
        self._stamp_labels()
        return super().to_bytes(exclude=exclude)

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        """Save the component to a directory; the model carries its labels."""
        self._stamp_labels()
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
            counts = _nonfinite(xp, node.get_grad(name))
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

    def _stamp_labels(self) -> None:
        self.model.attrs[LABELS_ATTR] = srsly.json_dumps(list(self.labels))

    def _load_model(self, data: bytes, old_tags: List[str], source: object) -> None:
        self._resize_output(old_tags)
        # Models saved before the labels were stored with them lack the attr.
        self.model.attrs.pop(LABELS_ATTR, None)
        try:
            _check_architecture(self.model, srsly.msgpack_loads(data))
            self.model.from_bytes(data)
            # An output width still unset before loading is taken from the
            # file as it is: it must match the labels in cfg.
            output = self.model.maybe_get_ref("output_layer")
            n_out = output.maybe_get_dim("nO") if output is not None else None
            if n_out is not None and n_out != len(self.tags):
                raise ValueError(
                    f"the model has {n_out} output tags, but the {len(self.labels)} "
                    f"labels in cfg make {len(self.tags)}"
                )
        except Exception as e:
            raise ValueError(
                f"Could not load the model of component '{self.name}' from "
                f"{source}: the data is corrupted or was saved by a component with "
                f"a different model architecture ({type(e).__name__}: {e})"
            ) from e
        saved = self.model.attrs.get(LABELS_ATTR)
        if saved is not None and make_tags(srsly.json_loads(saved)) != self.tags:
            raise ValueError(
                f"Could not load component '{self.name}' from {source}: its model "
                f"was trained with the labels {srsly.json_loads(saved)}, but its cfg "
                f"lists {list(self.labels)}. The cfg was edited or comes from "
                f"another model; loading it would relabel the entities."
            )
        for node in self.model.walk():
            for name in node.param_names:
                if not node.has_param(name):
                    continue
                counts = _nonfinite(self.model.ops.xp, node.get_param(name))
                if counts is not None:
                    raise ValueError(
                        f"Could not load component '{self.name}' from {source}: "
                        f"parameter '{name}' of layer '{node.name}' has {counts[0]} "
                        f"NaN and {counts[1]} inf values. The model was saved after "
                        f"training diverged, or the file is corrupted."
                    )

    def _load_cfg(self, data: bytes, source: object) -> None:
        try:
            cfg = srsly.json_loads(data)
            labels = cfg.get("labels", []) if isinstance(cfg, dict) else None
            if not isinstance(labels, list) or not all(
                isinstance(label, str) and label for label in labels
            ):
                raise ValueError("expected a JSON object with a list of label strings")
        except ValueError as e:
            raise ValueError(
                f"Could not load the cfg of component '{self.name}' from {source}: "
                f"the file is corrupted ({type(e).__name__}: {e})"
            ) from e
        self.cfg.update(cfg)

    def _read_file(self, path: Union[str, Path]) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as e:
            # Same OSError subclass (e.g. FileNotFoundError), naming the component.
            raise OSError(
                e.errno, f"Could not load component '{self.name}': can't read", str(path)
            ) from e

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
        dst = [i for i, tag in enumerate(new_tags) if tag in old_index]
        src = [old_index[new_tags[i]] for i in dst]
        if self.model.has_ref("output_layer"):
            layer = self.model.get_ref("output_layer")
            if not layer.has_param("W"):
                _set_output_width(self.model, layer, len(new_tags))
            else:
                # A new node (new id) rather than new params in place, so that
                # the optimizer doesn't apply moments of the old shape to it.
                new_layer = resize_linear_weighted(layer, len(new_tags))
                for name in ("W", "b"):
                    old_param = layer.get_param(name)
                    param = new_layer.ops.alloc((len(new_tags),) + old_param.shape[1:])
                    if name == "b":
                        param[...] = UNTRAINED_BIAS
                    param[dst] = old_param[src]
                    new_layer.set_param(name, param)
                _replace_node(self.model, layer, new_layer)
                _set_output_width(self.model, new_layer, len(new_tags))
        if self.model.has_ref("crf"):
            layer = self.model.get_ref("crf")
            if not layer.has_param("transitions"):
                _set_output_width(self.model, layer, len(new_tags))
                return
            new_crf = CRF(len(new_tags))
            new_crf.initialize()
            old_trans = layer.get_param("transitions")
            trans = new_crf.get_param("transitions")
            trans[numpy.ix_(dst, dst)] = old_trans[numpy.ix_(src, src)]
            for name in ("start", "end"):
                new_crf.get_param(name)[dst] = layer.get_param(name)[src]
            _replace_node(self.model, layer, new_crf)
            _set_output_width(self.model, new_crf, len(new_tags))


# Attrs that fix a layer's parameters and computation. thinc's `from_bytes`
# checks only the number of nodes and the dims, and takes the saved attrs and
# params as they are: a saved GRU would silently run where the config says
# LSTM. Other attrs (e.g. HashEmbed seeds) are meant to come from the file.
ARCH_ATTRS = ("cell", "bidirectional", "depth")


def _check_architecture(model: Model, msg: Dict) -> None:
    """Raise if the serialized model `msg` has another architecture than `model`."""
    nodes = list(model.walk())
    if not isinstance(msg, dict) or len(msg.get("nodes", ())) != len(nodes):
        return  # thinc's `from_dict` raises its own error
    for node, attrs, params in zip(nodes, msg["attrs"], msg["params"]):
        extra = sorted(set(params) - set(node.param_names))
        if extra:
            raise ValueError(
                f"the saved layer '{node.name}' has parameters {extra} that the "
                f"configured one lacks"
            )
        for key in ARCH_ATTRS:
            if key in node.attrs and key in attrs:
                saved = srsly.msgpack_loads(attrs[key])
                if saved != node.attrs[key]:
                    raise ValueError(
                        f"the saved layer '{node.name}' has {key}={saved!r}, the "
                        f"configured one {key}={node.attrs[key]!r}"
                    )


def _nonfinite(xp, array) -> Optional[Tuple[int, int]]:
    """None if `array` is all finite, else its numbers of NaN and inf values."""
    if bool(xp.isfinite(array).all()):
        return None
    return int(xp.isnan(array).sum()), int(xp.isinf(array).sum())


def _preset_tokens(doc: Doc) -> numpy.ndarray:
    """Tokens in an existing entity or blocked: they must stay "O" for us."""
    iob = doc.to_array("ENT_IOB")
    return (iob == 1) | (iob == 3)


def _blocked_spans(doc: Doc) -> List[Span]:
    """Blocked tokens (B with no entity type) as one-token spans."""
    iob = doc.to_array("ENT_IOB")
    ent_type = doc.to_array("ENT_TYPE")
    return [doc[i : i + 1] for i in numpy.flatnonzero((iob == 3) & (ent_type == 0))]


def _replace_node(model: Model, old: Model, new: Model) -> None:
    """Put `new` wherever `old` is a layer or a ref in `model`'s tree."""
    nodes = list(model.walk())
    for node in nodes:
        for i, child in enumerate(node.layers):
            if child is old:
                node.layers[i] = new
    for node in nodes:
        for ref in node.ref_names:
            if node.maybe_get_ref(ref) is old:
                node.set_ref(ref, new)


def _set_output_width(model: Model, layer: Model, nO: int) -> None:
    """Set `nO` on `layer` (which must have no params yet) and on every node
    whose output is `layer`'s output (e.g. the chain and `with_array` around
    it), where that width was already set.
    """
    for node in model.walk():
        if node is layer or _ends_with(node, layer):
            if node.has_dim("nO"):
                node.set_dim("nO", nO, force=True)


def _ends_with(node: Model, layer: Model) -> bool:
    while node.layers:
        node = node.layers[-1]
        if node is layer:
            return True
    return False
