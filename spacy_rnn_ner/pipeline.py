"""The `rnn_ner` component: per-token BILUO tagging with a recurrent network,
decoded with constrained Viterbi into `doc.ents`."""
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
from spacy.tokens import Doc, Span
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
from thinc.types import Floats2d

from .tags import make_tags, tags_to_spans, viterbi_decode

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


@Language.factory(
    "rnn_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": DEFAULT_RNN_NER_MODEL,
        "overwrite_ents": False,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
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
    scorer: Optional[Callable],
) -> "RNNEntityRecognizer":
    """Create an `RNNEntityRecognizer`.

    model (Model[List[Doc], List[Floats2d]]): Per doc an (n_tokens, n_tags)
        array of tag probabilities; see `spacy-rnn-ner.RNNTagger.v1`.
    overwrite_ents (bool): Replace the entities already on the doc instead of
        keeping them and only adding non-overlapping ones.
    scorer (Optional[Callable]): Defaults to spaCy's NER scorer.
    """
    return RNNEntityRecognizer(
        nlp.vocab, model, name, overwrite_ents=overwrite_ents, scorer=scorer
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
        scorer: Optional[Callable] = get_ner_prf,
    ) -> None:
        """Initialize the component.

        vocab (Vocab): The shared vocabulary.
        model (Model[List[Doc], List[Floats2d]]): The tagging model; it must
            output softmax probabilities and have an "output_layer" ref.
        name (str): The component instance name, used as the key in losses.
        overwrite_ents (bool): Whether to replace existing `doc.ents`.
        scorer (Optional[Callable]): The scoring method.
        """
        self.vocab = vocab
        self.model = model
        self.name = name
        # Only the labels are in cfg: `overwrite_ents` comes from the config,
        # and a value in cfg would override it again on load.
        self.cfg: Dict[str, List[str]] = {"labels": []}
        self.overwrite_ents = overwrite_ents
        self.scorer = scorer
        self._warned_labels: Set[str] = set()

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
        by the label's four tags: the weights of existing tags are kept and
        the new tags start at zero, as in spaCy's resizable components.

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
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            # Nothing to run the model on (it may not even be initialized).
            return [self.model.ops.alloc2f(0, len(self.tags)) for _ in docs]
        scores = self.model.predict(docs)
        if len(scores) != len(docs):
            raise ValueError(f"Expected scores for {len(docs)} docs, got {len(scores)}")
        return scores

    def set_annotations(self, docs: Iterable[Doc], scores: List[Floats2d]) -> None:
        """Set `doc.ents` from the best valid BILUO sequence of each doc.

        Unless `overwrite_ents`, the entities already on a doc and its blocked
        tokens are kept, new entities never overlap them, and every other
        token is set to "O" (not missing).

        docs (Iterable[Doc]): The documents to modify.
        scores (List[Floats2d]): The scores from `predict`.
        """
        if isinstance(docs, Doc):
            docs = [docs]
        docs = list(docs)
        tags = self.tags
        xp = self.model.ops.xp
        log_scores = [xp.log(xp.clip(s, MIN_PROB, 1.0)) for s in scores]
        forbid = None if self.overwrite_ents else [_preset_tokens(doc) for doc in docs]
        paths = viterbi_decode(log_scores, tags, forbid, xp=xp)
        for doc, path in zip(docs, paths):
            spans = tags_to_spans(doc, [tags[i] for i in path])
            if self.overwrite_ents:
                doc.set_ents(spans, default="outside")
            else:
                ents = list(doc.ents) + spans
                doc.set_ents(ents, blocked=_blocked_spans(doc), default="outside")

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
        set_dropout_rate(self.model, drop)
        docs = [eg.predicted for eg in examples]
        scores, backprop_scores = self.model.begin_update(docs)
        loss, d_scores = self.get_loss(examples, scores)
        backprop_scores(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(
        self, examples: Iterable[Example], scores: List[Floats2d]
    ) -> Tuple[float, List[Floats2d]]:
        """Categorical cross-entropy against the gold BILUO tags. Tokens whose
        gold tag is missing get no loss and a zero gradient, and so do tokens
        of an entity type the component doesn't know (warned about once per
        label): they are annotation the component can't learn from.

        examples (Iterable[Example]): The batch.
        scores (List[Floats2d]): The predicted probabilities.
        RETURNS (Tuple[float, List[Floats2d]]): The loss (sum of squared
            gradients, as spaCy's Tagger reports it) and d_scores.
        """
        examples = list(examples)
        validate_examples(examples, "RNNEntityRecognizer.get_loss")
        tags = self.tags
        known = set(tags)
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
        loss_func = SequenceCategoricalCrossentropy(
            names=tags, normalize=False, missing_value=None
        )
        d_scores, loss = loss_func(scores, truths)
        if self.model.ops.xp.isnan(loss):
            raise ValueError(Errors.E910.format(name=self.name))
        return float(loss), d_scores

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
            "cfg": lambda b: self.cfg.update(srsly.json_loads(b)),
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
            "cfg": lambda p: self.cfg.update(srsly.read_json(p)),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: self._load_model(Path(p).read_bytes(), old_tags, p),
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

    def _load_model(self, data: bytes, old_tags: List[str], source: object) -> None:
        self._resize_output(old_tags)
        try:
            self.model.from_bytes(data)
        except Exception as e:
            raise ValueError(
                f"Could not load the model of component '{self.name}' from "
                f"{source}: the data is corrupted or was saved by a component with "
                f"a different model architecture ({type(e).__name__}: {e})"
            ) from e

    def _resize_output(self, old_tags: List[str]) -> None:
        """Give the output layer one row per tag in `self.tags`, keeping the
        rows of tags that were in `old_tags`. Tags are in sorted-label order,
        so a new label can land in the middle: rows are moved by tag name.
        """
        new_tags = self.tags
        if new_tags == old_tags or not self.model.has_ref("output_layer"):
            return
        layer = self.model.get_ref("output_layer")
        if not layer.has_param("W"):
            _set_output_width(self.model, layer, len(new_tags))
            return
        # A new node (new id) rather than new params in place, so that the
        # optimizer doesn't apply moments of the old shape to it.
        new_layer = resize_linear_weighted(layer, len(new_tags))
        old_index = {tag: i for i, tag in enumerate(old_tags)}
        dst = [i for i, tag in enumerate(new_tags) if tag in old_index]
        src = [old_index[new_tags[i]] for i in dst]
        for name in ("W", "b"):
            old_param = layer.get_param(name)
            shape = (len(new_tags),) + old_param.shape[1:]
            param = new_layer.ops.xp.zeros(shape, dtype="f")
            param[dst] = old_param[src]
            new_layer.set_param(name, param)
        _replace_node(self.model, layer, new_layer)
        _set_output_width(self.model, new_layer, len(new_tags))


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
