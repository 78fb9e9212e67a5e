"""The component's objective, chosen once from its model: per-token
cross-entropy for a softmax tagger, the CRF's negative log-likelihood for a
CRF tagger.

Both kinds feed the same constrained chain (crf.py): a CRF tagger with its
own emission and transition scores, a softmax tagger with log-probabilities
and zero transitions. The loss object therefore also says what the chain is
(`emissions`, `chain`), so that nothing else needs to ask which
kind of tagger it has. As thinc's loss classes, `get_loss(scores, truths)`
returns `(d_scores, loss)`.

Negative annotation (spaCy's `incorrect_spans_key`: spans known NOT to be
entities of their label) adds -log(1 - P(span | gold)) per span under the
same chain (`crf.negative_span_nll`), for both kinds of tagger.
"""
from typing import List, Optional, Sequence, Tuple

from thinc.api import Model, SequenceCategoricalCrossentropy
from thinc.types import Floats2d

from . import crf
from .batching import length_buckets
from .crf import Chain

# Probabilities are clipped to this before the log, so that a softmax that
# underflows to 0 gives a very low but finite score.
MIN_PROB = 1e-30
CRF_PARAMS = ("transitions", "start", "end")

# Gold BILUO tags per doc, None where missing.
TruthsT = Sequence[Sequence[Optional[str]]]
# Per doc the (start, end_exclusive, label) spans known not to be entities.
NegativesT = Optional[Sequence[Sequence[Tuple[int, int, str]]]]


class TagLoss:
    """The objective of a tagger over `tags` whose model is `model`."""

    def __init__(self, model: Model, tags: Sequence[str]) -> None:
        self.model = model
        self.tags = list(tags)

    def emissions(self, scores: List[Floats2d]) -> List[Floats2d]:
        """Per-token chain scores from the model's scores."""
        raise NotImplementedError

    def chain(self) -> Chain:
        """The chain over the tags: constraints only, unless a CRF has
        learned transition scores."""
        return Chain.zeros(self.model.ops.xp, self.tags)

    def get_loss(
        self,
        scores: List[Floats2d],
        truths: TruthsT,
        *,
        negatives: NegativesT = None,
        is_train: bool = False,
    ) -> Tuple[List[Floats2d], float]:
        """The gradient of the loss for the model's scores, and the loss.
        Tokens whose gold tag is None add no loss. Each span in `negatives`
        adds -log(1 - P(span | gold)). With `is_train`, the gradients of the
        loss's own parameters (a CRF's transition scores) are added to their
        layer, as a layer's backprop does.
        """
        d_scores, loss, d_params = self.gold_loss(scores, truths, negatives=negatives)
        if is_train:
            self.inc_chain_grads(d_params)
        return d_scores, loss

    def gold_loss(
        self, scores: List[Floats2d], truths: TruthsT, *, negatives: NegativesT = None
    ) -> Tuple[List[Floats2d], float, List]:
        """As `get_loss`, also returning the gradients of the chain's own
        transition, start and end scores (zeros for a softmax tagger)."""
        raise NotImplementedError

    def emission_grad_to_scores(self, d_emissions: Floats2d, scores: Floats2d) -> Floats2d:
        """The gradient for the model's scores from one for its emissions."""
        return d_emissions

    def inc_chain_grads(self, d_params: Sequence) -> None:
        """Add gradients of the chain's transition, start and end scores to
        the layer that holds them (none for a softmax tagger)."""

    def _negative_span_loss(
        self, emissions: List[Floats2d], truths: TruthsT, negatives: NegativesT
    ) -> Tuple[List[Optional[Floats2d]], float, List]:
        """Per doc the gradient of the negative spans' loss for its emissions
        (None if it has none), the loss, and the gradients of the chain's
        transitions, start and end."""
        xp = self.model.ops.xp
        chain = self.chain()
        d_emissions: List[Optional[Floats2d]] = [None] * len(emissions)
        d_params = [xp.zeros_like(p) for p in chain[1:]]
        loss = 0.0
        for i, spans in enumerate(negatives or []):
            n_tokens = int(emissions[i].shape[0])
            if not spans or not n_tokens:
                continue
            gold = crf.gold_mask_from_biluo(xp, [truths[i]], self.tags)
            lengths = xp.asarray([n_tokens], dtype="i")
            seq_loss, d_emis, *doc_d_params = crf.negative_span_nll(
                xp, chain, emissions[i][None], lengths, gold, [spans]
            )
            loss += float(seq_loss.sum())
            d_emissions[i] = d_emis[0]
            for total, grad in zip(d_params, doc_d_params):
                total += grad
        return d_emissions, loss, d_params

    def get_rehearsal_loss(
        self, scores: List[Floats2d], targets: List[Floats2d], tutor: Model, *, is_train: bool = False
    ) -> Tuple[List[Floats2d], float]:
        """Score like `tutor`, whose scores are `targets`: the gradient is the
        difference of the scores per token, normalised by the batch's tokens,
        as spaCy's Tagger rehearses; the loss the summed squared gradients."""
        n_tokens = sum(len(s) for s in scores)
        d_scores = [(s - t) / max(n_tokens, 1) for s, t in zip(scores, targets)]
        return d_scores, sum(float((d**2).sum()) for d in d_scores)


class SoftmaxTagLoss(TagLoss):
    """Categorical cross-entropy of per-token softmax probabilities, reported
    as the sum of squared gradients, as spaCy's Tagger does."""

    def emissions(self, scores: List[Floats2d]) -> List[Floats2d]:
        xp = self.model.ops.xp
        return [xp.log(xp.clip(s, MIN_PROB, 1.0)) for s in scores]

    def emission_grad_to_scores(self, d_emissions: Floats2d, scores: Floats2d) -> Floats2d:
        # From log-probabilities to the logits, which the softmax layer's
        # backprop takes.
        return d_emissions - scores * d_emissions.sum(axis=1, keepdims=True)

    def gold_loss(
        self, scores: List[Floats2d], truths: TruthsT, *, negatives: NegativesT = None
    ) -> Tuple[List[Floats2d], float, List]:
        loss_func = SequenceCategoricalCrossentropy(
            names=self.tags, normalize=False, missing_value=None
        )
        d_scores, loss = loss_func(scores, list(truths))
        loss = float(loss)
        if negatives:
            d_emissions, neg_loss, _ = self._negative_span_loss(
                self.emissions(scores), truths, negatives
            )
            loss += neg_loss
            for i, d_log_p in enumerate(d_emissions):
                if d_log_p is not None:
                    d_scores[i] = d_scores[i] + self.emission_grad_to_scores(d_log_p, scores[i])
        return d_scores, loss, []


class CRFTagLoss(TagLoss):
    """Negative log-likelihood of the gold tags under the linear-chain CRF of
    the model's "crf" layer; missing tags are marginalised."""

    def emissions(self, scores: List[Floats2d]) -> List[Floats2d]:
        return scores

    def chain(self) -> Chain:
        layer = self.model.get_ref("crf")
        return Chain(self.tags, *(layer.get_param(name) for name in CRF_PARAMS))

    def gold_loss(
        self, scores: List[Floats2d], truths: TruthsT, *, negatives: NegativesT = None
    ) -> Tuple[List[Floats2d], float, List]:
        # Padded in length buckets (see batching.py).
        xp = self.model.ops.xp
        n_tags = len(self.tags)
        chain = self.chain()
        lengths = [int(s.shape[0]) for s in scores]
        d_scores = [self.model.ops.alloc2f(n, n_tags) for n in lengths]
        d_params = [xp.zeros_like(p) for p in chain[1:]]
        loss = 0.0
        for bucket in length_buckets(lengths):
            n_steps = lengths[bucket[0]]
            emissions = xp.zeros((len(bucket), n_steps, n_tags), dtype="f")
            for row, i in enumerate(bucket):
                emissions[row, : lengths[i]] = scores[i]
            gold = crf.gold_mask_from_biluo(
                xp, [truths[i] for i in bucket], self.tags, n_steps=n_steps
            )
            bucket_lengths = xp.asarray([lengths[i] for i in bucket], dtype="i")
            seq_losses, d_emissions, *bucket_d_params = crf.nll_and_grads(
                xp, chain, emissions, bucket_lengths, gold
            )
            loss += float(seq_losses.sum())
            for row, i in enumerate(bucket):
                d_scores[i] = d_emissions[row, : lengths[i]]
            for total, grad in zip(d_params, bucket_d_params):
                total += grad
        if negatives:
            d_emissions, neg_loss, neg_d_params = self._negative_span_loss(scores, truths, negatives)
            loss += neg_loss
            for i, d_emis in enumerate(d_emissions):
                if d_emis is not None:
                    d_scores[i] = d_scores[i] + d_emis
            for total, grad in zip(d_params, neg_d_params):
                total += grad
        return d_scores, loss, d_params

    def get_rehearsal_loss(
        self, scores: List[Floats2d], targets: List[Floats2d], tutor: Model, *, is_train: bool = False
    ) -> Tuple[List[Floats2d], float]:
        """As `TagLoss.get_rehearsal_loss`, plus the difference of the
        transition scores to the tutor's (if it has a CRF)."""
        d_scores, loss = super().get_rehearsal_loss(scores, targets, tutor, is_train=is_train)
        if tutor.has_ref("crf"):
            tutor_crf = tutor.get_ref("crf")
            d_params = [
                mine - tutor_crf.get_param(name)
                for mine, name in zip(self.chain()[1:], CRF_PARAMS)
            ]
            loss += sum(float((d**2).sum()) for d in d_params)
            if is_train:
                self.inc_chain_grads(d_params)
        return d_scores, loss

    def inc_chain_grads(self, d_params: Sequence) -> None:
        layer = self.model.get_ref("crf")
        for name, grad in zip(CRF_PARAMS, d_params):
            layer.inc_grad(name, grad)


def tag_loss_class(model: Model) -> type:
    """The objective of the tagger `model`: CRF if it has a "crf" ref."""
    return CRFTagLoss if model.has_ref("crf") else SoftmaxTagLoss
