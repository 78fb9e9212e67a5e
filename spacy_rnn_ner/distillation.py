"""Distillation: a student tagger learns to match a teacher's chain.

The loss is structure-level (Wang et al. 2020, "Structure-level knowledge
distillation for multilingual sequence labeling"): per doc the KL divergence
KL(teacher || student) between the two chains' distributions over whole tag
sequences, not per-token softmax targets. For linear-chain CRFs it is

    KL = log Z_s - log Z_t - E_t[score_s(y) - score_t(y)],

where E_t takes the teacher's expected counts (token and transition
marginals from forward-backward, `crf.expected_counts`), so its gradient
for the student's emissions is `student marginals - teacher marginals` and
for the student's transition, start and end scores the difference of the
expected counts. A softmax tagger is the chain of its log-probabilities
with zero transitions, as everywhere in this package; an ensemble teacher
(`EnsembleCRFTagger.v1`) is one CRF over its mean emissions. The BILUO
constraints apply to both chains.
"""
from typing import List, Optional, Sequence, Tuple

from thinc.types import Floats2d

from . import crf
from .batching import length_buckets
from .losses import TagLoss


class TeacherStudentLoss:
    """The KL term and its gradients: for the student's scores, and for its
    chain's transitions, start and end (zeros for a softmax student)."""

    def __init__(self, d_scores: List[Floats2d], loss: float, d_params: List) -> None:
        self.d_scores = d_scores
        self.loss = loss
        self.d_params = d_params


def teacher_student_loss(
    teacher: TagLoss,
    teacher_scores: Sequence[Floats2d],
    student: TagLoss,
    student_scores: Sequence[Floats2d],
    *,
    weights: Optional[Sequence[float]] = None,
) -> TeacherStudentLoss:
    """KL(teacher || student) summed over docs (each doc times its weight,
    default 1), with its gradients.

    teacher, student (TagLoss): The objectives of the two taggers; they give
        each one's chain (`chain()`) and emissions (`emissions(scores)`).
    teacher_scores, student_scores (Sequence[Floats2d]): Per doc the
        (n_tokens, n_tags) scores of each model over the same tags.
    weights (Optional[Sequence[float]]): Per doc the weight of its term.
    """
    if list(teacher.tags) != list(student.tags):
        raise ValueError(
            f"the teacher's tags {list(teacher.tags)} differ from the student's "
            f"{list(student.tags)}: distillation needs the same labels"
        )
    if len(teacher_scores) != len(student_scores):
        raise ValueError(
            f"got teacher scores for {len(teacher_scores)} docs, student scores for "
            f"{len(student_scores)}"
        )
    xp = student.model.ops.xp
    n_tags = len(student.tags)
    lengths = [int(s.shape[0]) for s in student_scores]
    for t, s in zip(teacher_scores, student_scores):
        if t.shape != s.shape:
            raise ValueError(f"teacher scores {t.shape} and student scores {s.shape} differ")
    weights = [1.0] * len(lengths) if weights is None else [float(w) for w in weights]
    t_chain, s_chain = teacher.chain(), student.chain()
    t_emis_list, s_emis_list = teacher.emissions(list(teacher_scores)), student.emissions(list(student_scores))
    d_scores = [student.model.ops.alloc2f(n, n_tags) for n in lengths]
    d_params = [xp.zeros_like(p) for p in s_chain[1:]]
    total = 0.0
    # Rows of one weight at a time: the chain's counts are summed over rows.
    for weight in sorted(set(weights)):
        rows = [i for i, w in enumerate(weights) if w == weight and lengths[i]]
        if not rows or weight == 0.0:
            continue
        for bucket in length_buckets([lengths[i] for i in rows]):
            items = [rows[k] for k in bucket]
            n_steps = lengths[items[0]]
            dtype = student_scores[items[0]].dtype
            t_emis = xp.zeros((len(items), n_steps, n_tags), dtype=dtype)
            s_emis = xp.zeros((len(items), n_steps, n_tags), dtype=dtype)
            for row, i in enumerate(items):
                t_emis[row, : lengths[i]] = t_emis_list[i]
                s_emis[row, : lengths[i]] = s_emis_list[i]
            bucket_lengths = xp.asarray([lengths[i] for i in items], dtype="i")
            loss, d_emis, bucket_d_params = _kl(xp, t_chain, t_emis, s_chain, s_emis, bucket_lengths)
            total += weight * loss
            for row, i in enumerate(items):
                d_scores[i] = weight * student.emission_grad_to_scores(
                    d_emis[row, : lengths[i]], student_scores[i]
                )
            for acc, grad in zip(d_params, bucket_d_params):
                acc += weight * grad
    return TeacherStudentLoss(d_scores, total, d_params)


def _kl(xp, t_chain: crf.Chain, t_emis, s_chain: crf.Chain, s_emis, lengths) -> Tuple[float, object, List]:
    """KL(teacher || student) summed over the rows of one padded bucket,
    its gradient for the student's emissions, and for its chain's params."""
    logZ_t, *t_counts = crf.expected_counts(xp, t_chain, t_emis, lengths)
    logZ_s, *s_counts = crf.expected_counts(xp, s_chain, s_emis, lengths)

    def expected_score(counts, chain: crf.Chain, emis) -> float:
        # Teacher counts are exactly 0 on padding and on forbidden moves.
        params = (emis, chain.transitions, chain.start, chain.end)
        return sum(float((c * xp.where(c > 0, p, 0.0)).sum()) for c, p in zip(counts, params))

    kl = float((logZ_s - logZ_t).sum()) - (
        expected_score(t_counts, s_chain, s_emis) - expected_score(t_counts, t_chain, t_emis)
    )
    grads = [s - t for s, t in zip(s_counts, t_counts)]
    return kl, grads[0], grads[1:]
