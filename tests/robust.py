"""Shared by the robustness tests (test_input_edge_cases, test_training_data,
test_loading, test_determinism): two small pipelines (softmax and CRF tagger)
trained for a few steps, so that they predict entities and the decoding of
entities, not only of "O", is exercised; generators of hostile text; and a
check that the annotations left on a doc are well-formed. The pipelines are
the session fixtures `pipelines` and `nlp` of conftest.py.
"""
import numpy
import spacy
from hypothesis import HealthCheck
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import biluo_tags_to_spans
from spacy.training.iob_utils import doc_to_biluo_tags
from thinc.api import Adam, fix_random_seed

from .conftest import TRAIN_DATA, make_examples


def small_config(*, crf: bool = False, width: int = 16, **encode) -> dict:
    """A small component config: the softmax tagger (MultiHashEmbed), or the
    CRF tagger with character embeddings, whose decoding, loss and embedding
    of arbitrary unicode differ."""
    encode = {"width": width, **encode}
    if not crf:
        return {"model": {"tok2vec": {"embed": {"width": width}, "encode": encode}}}
    embed = {
        "@architectures": "spacy-rnn-ner.CharMultiHashEmbed.v1",
        "width": width,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": [500, 100, 200, 200],
    }
    tok2vec = {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": embed,
        "encode": {"@architectures": "spacy-rnn-ner.RNNEncoder.v1", **encode},
    }
    return {"model": {"@architectures": "spacy-rnn-ner.RNNCRFTagger.v1", "tok2vec": tok2vec}}


SMALL = small_config()
TAGGERS = {"softmax": SMALL, "crf": small_config(crf=True)}

# Hard cases mixed into the generated text: entity words the model knows,
# emoji ZWJ sequences and flags, RTL text and direction overrides, combining
# marks, zero-width and control characters, odd whitespace, URLs, numbers.
HARD = [
    "Ada", "Lovelace", "Charles", "Babbage", "London", "Acme", "Corp", "Paris",
    "Grace", "Hopper", "United", "States", "Navy", "Alan", "Berlin", "Globex", ".",
    "👩‍👩‍👧", "🇺🇸", "🏳️‍🌈", "👍🏽", "مرحبا بالعالم", "שלום", "\u200f", "\u202e", "\u2066",
    "e\u0301", "\u0301", "Z̤͔ͧ̑̓ä͖̭̈̇l͖͎g̞̥͈ͮo̓", "\u200b", "\u200d", "\ufeff", "\x00", "\x1b[31m",
    "\x7f", "\t", "\n", "\r\n", "\n\n\n", "  ", "\u00a0", "\u3000", "\u2028", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "東京", "ﷺ", "\U0010fffd", "https://example.com/a?b=c", "@user", "#tag", "U.S.A.",
    "1,000.00", "can't", "''", '"', "--", "...", "(", ")",
]
# Every code point but lone surrogates: a str holding one is not valid text,
# and spaCy's tokenizer already fails to encode it (UnicodeEncodeError).
CHARS = st.characters(blacklist_categories=("Cs",))
PIECES = st.one_of(
    st.text(CHARS, max_size=8),
    st.sampled_from(HARD),
    st.sampled_from([" ", "  ", "\n"]),
)
TEXTS = st.lists(PIECES, max_size=40).map("".join)
LONG_TEXTS = st.lists(PIECES, min_size=100, max_size=400).map(" ".join)
WORDS = st.one_of(st.sampled_from(HARD), st.text(CHARS, min_size=1, max_size=6))
WORD_LISTS = st.lists(WORDS, max_size=60)
PROPERTY = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def copy_of(nlp: Language, **settings) -> Language:
    """A pipeline with `nlp`'s config and weights, free to modify."""
    config = dict(nlp.get_pipe_config("rnn_ner"))
    config.pop("factory")
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("rnn_ner", config={**config, **settings})
    return nlp2.from_bytes(nlp.to_bytes())


def train_small(config: dict, *, seed: int = 0, steps: int = 30) -> Language:
    """A blank English pipeline with an `rnn_ner` of `config`, trained for
    `steps` updates on TRAIN_DATA (Adam, rate 0.01) from `seed`."""
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_ner", config=config)
    examples = make_examples(nlp.vocab)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp


def trained_a_little(config: dict) -> Language:
    """It tags entities on TRAIN_DATA, not perfectly."""
    nlp = train_small(config)
    n_ents = sum(len(nlp(Doc(nlp.vocab, words=words)).ents) for words, _ in TRAIN_DATA)
    assert n_ents >= 8, "the fixture should predict entities"
    return nlp


def ent_tuples(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def check_doc(doc: Doc, ner, preset_labels=()) -> None:
    """The annotations the component leaves on `doc` are well-formed."""
    n = len(doc)
    ents = list(doc.ents)
    prev_end = 0
    for ent in ents:
        assert prev_end <= ent.start < ent.end <= n, ent_tuples(doc)
        assert ent.label_ in ner.labels or ent.label_ in preset_labels, ent.label_
        prev_end = ent.end
    iob = [t.ent_iob_ for t in doc]
    types = [t.ent_type_ for t in doc]
    inside = [False] * n
    for ent in ents:
        for i in range(ent.start, ent.end):
            inside[i] = True
            assert types[i] == ent.label_
            assert iob[i] == ("B" if i == ent.start else "I")
    for i in range(n):
        if not inside[i]:
            # "O", or blocked (B without a type); never left missing.
            assert (iob[i], types[i]) in (("O", ""), ("B", "")), (i, iob[i], types[i])
    # spaCy's own BILUO view of the doc is valid and gives back doc.ents.
    spans = biluo_tags_to_spans(doc, doc_to_biluo_tags(doc, missing="O"))
    assert [(s.start, s.end, s.label_) for s in spans] == ent_tuples(doc)
    key = getattr(ner, "spans_key", None)
    if key is not None and key in doc.spans:
        group = doc.spans[key]
        for span in group:
            assert 0 <= span.start < span.end <= n
        probs = numpy.asarray(group.attrs.get("scores", []), dtype="f")
        assert len(probs) == len(group)
        assert numpy.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1 + 1e-5).all()


