"""`spacy-rnn-ner.EnsembleCRFTagger.v1`: several CRF taggers as one model.

Every member (`spacy-rnn-ner.RNNCRFTagger.v1`, each with its own tok2vec)
scores the tokens; the ensemble's emission scores are the members' mean, and
its CRF (the ref "crf", which the component's loss and decoder read) starts
as the mean of the members' CRFs. Trained separately (different seeds, or
machines) and joined with `python -m spacy_rnn_ner ensemble`, the members
make errors the mean partly cancels; the cost is that every member runs at
inference.
"""
import hashlib
from typing import Callable, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d
from thinc.util import to_numpy

from .config_types import PositiveInt, setting_error
from .layers.crf_layer import CRF
from .losses import CRF_PARAMS

InT = List[Doc]
OutT = List[Floats2d]
BLOCK = "spacy-rnn-ner.EnsembleCRFTagger.v1"


@registry.architectures(BLOCK)
def build_ensemble_crf_tagger(
    *members: Model[InT, OutT], nO: Optional[PositiveInt] = None
) -> Model[InT, OutT]:
    """The mean of the members' emission scores, under one linear-chain CRF
    (ref "crf"; the members' own CRF layers are kept but not used).

    members (Model): Two or more `RNNCRFTagger.v1` models over the same tags,
        each with its own token vectors (not a listener to a shared tok2vec).
    nO (Optional[int]): Number of tags; inferred from the component if None.
    """
    if len(members) < 2:
        raise setting_error(
            BLOCK,
            "*",
            f"EnsembleCRFTagger: needs at least 2 members, got {len(members)} "
            "(a single model is spacy-rnn-ner.RNNCRFTagger.v1)",
        )
    for i, member in enumerate(members):
        if not isinstance(member, Model) or not member.has_ref("crf"):
            raise setting_error(
                BLOCK,
                "*",
                f"EnsembleCRFTagger: member {i} is not a CRF tagger "
                "(spacy-rnn-ner.RNNCRFTagger.v1)",
            )
        if any(isinstance(node, Tok2VecListener) for node in member.walk()):
            raise setting_error(
                BLOCK,
                "*",
                f"EnsembleCRFTagger: member {i} listens to a shared tok2vec component; "
                "each member needs its own tok2vec (one listener per component)",
            )
    crf = CRF(nO)
    model: Model[InT, OutT] = Model(
        "ensemble_crf_tagger",
        forward,
        init=init,
        layers=[*members, crf],
        refs={"crf": crf},
        dims={"nO": nO},
        attrs={"resize_output": resize_ensemble_output},
    )
    return model


def _members(model: Model) -> List[Model]:
    return model.layers[:-1]


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    members = _members(model)
    results = [member(docs, is_train) for member in members]
    n = float(len(members))
    scores = [sum(out[i] for out, _ in results) / n for i in range(len(docs))]
    scores, backprop_crf = model.get_ref("crf")(scores, is_train)

    def backprop(d_scores: OutT) -> InT:
        d_member = [d / n for d in backprop_crf(d_scores)]
        for _, backprop_member in results:
            backprop_member(d_member)
        return []

    return scores, backprop


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    for member in _members(model):
        member.initialize(X=X, Y=Y)
    n_out = _members(model)[0].get_dim("nO")
    crf = model.get_ref("crf")
    crf.set_dim("nO", n_out, force=True)
    crf.initialize()
    model.set_dim("nO", n_out, force=True)


def resize_ensemble_output(
    model: Model[InT, OutT], rows: Sequence[Optional[int]], *, new_bias: float = 0.0
) -> Model[InT, OutT]:
    """`model.attrs["resize_output"]`: set the tag count of an untrained
    ensemble. A trained one can't take new labels: its members would need
    training on them, so add the labels to the members and join them again."""
    crf = model.get_ref("crf")
    if crf.has_param("transitions"):
        raise ValueError(
            "EnsembleCRFTagger: can't add labels to a trained ensemble; train the "
            "members with the new labels and join them again "
            "(python -m spacy_rnn_ner ensemble)"
        )
    for member in _members(model):
        member.attrs["resize_output"](member, rows, new_bias=new_bias)
    for node in (crf, model):
        if node.has_dim("nO"):
            node.set_dim("nO", len(rows), force=True)
    return model


def join_trained(members: Sequence[Model[InT, OutT]]) -> Model[InT, OutT]:
    """An ensemble of trained CRF taggers (the objects themselves, not
    copies), its CRF scores the mean of theirs."""
    ensemble = build_ensemble_crf_tagger(*members)
    crfs = [member.get_ref("crf") for member in members]
    if any(not crf.has_param("transitions") for crf in crfs):
        raise ValueError("join_trained: every member must be trained (initialized)")
    shapes = {tuple(crf.get_param("transitions").shape) for crf in crfs}
    if len(shapes) != 1:
        raise ValueError(f"join_trained: the members have different tag counts: {sorted(shapes)}")
    n_out = crfs[0].get_dim("nO")
    crf = ensemble.get_ref("crf")
    crf.set_dim("nO", n_out)
    ensemble.set_dim("nO", n_out)
    for name in CRF_PARAMS:
        crf.set_param(name, sum(c.get_param(name) for c in crfs) / float(len(crfs)))
    return ensemble


def join_pipelines(pipelines: Sequence[Language], component: str = "rnn_ner") -> Language:
    """The first pipeline, its `component` replaced by an ensemble of that
    component's model in every pipeline (the first pipeline is changed and
    returned; the others are left as they were, their weights copied). The
    members must have the same labels and the same static vectors table; the
    ensemble keeps the first component's settings (temperature, threshold,
    spans_key)."""
    from .serialize import load_model

    if len(pipelines) < 2:
        raise ValueError(f"need at least 2 pipelines to join, got {len(pipelines)}")
    base = pipelines[0]
    components = []
    for i, nlp in enumerate(pipelines):
        if component not in nlp.pipe_names:
            raise ValueError(
                f"pipeline {i} has no component {component!r} (it has {nlp.pipe_names})"
            )
        factory = nlp.get_pipe_meta(component).factory
        if factory != "rnn_ner":
            raise ValueError(f"pipeline {i}: {component!r} is a {factory!r} component, not rnn_ner")
        components.append(nlp.get_pipe(component))
    labels = list(components[0].labels)
    vectors = _vectors_id(base)
    for i, (nlp, proc) in enumerate(zip(pipelines, components)):
        if list(proc.labels) != labels:
            raise ValueError(
                f"pipeline {i} has the labels {list(proc.labels)}, pipeline 0 has {labels}"
            )
        if _vectors_id(nlp) != vectors:
            raise ValueError(
                f"pipeline {i} has other static vectors ({_vectors_id(nlp)}) than pipeline 0 "
                f"({vectors}); members share the first pipeline's vocab"
            )
    if len({id(proc.model) for proc in components}) < len(components):
        raise ValueError("the same pipeline is given twice: join different pipelines")
    joined = join_trained([proc.model for proc in components])
    config = base.config.interpolate()["components"][component].copy()
    config.pop("factory")
    config["model"] = {
        "@architectures": "spacy-rnn-ner.EnsembleCRFTagger.v1",
        "nO": None,
        "*": {
            f"member{i}": nlp.config.interpolate()["components"][component]["model"]
            for i, nlp in enumerate(pipelines)
        },
    }
    position = base.pipe_names.index(component)
    base.remove_pipe(component)
    if position == 0:
        proc = base.add_pipe("rnn_ner", name=component, config=config, first=True)
    else:
        after = base.pipe_names[position - 1]
        proc = base.add_pipe("rnn_ner", name=component, config=config, after=after)
    for label in labels:
        proc.add_label(label)
    load_model(proc.model, joined.to_bytes(), labels=proc.labels, name=component,
               source="the joined members")
    return base


def _vectors_id(nlp: Language) -> Tuple[Optional[str], Tuple[int, ...], int, str]:
    """Name, shape, key count and a digest of the static vectors' data."""
    vectors = nlp.vocab.vectors
    data = to_numpy(vectors.data).tobytes()
    digest = hashlib.sha1(data).hexdigest()[:12]
    return vectors.name, tuple(vectors.shape), len(vectors.key2row), digest
