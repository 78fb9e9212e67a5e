"""Print the entities a trained pipeline finds in a text.

    python scripts/show_entities.py training/lstm/model-best ["Some text."]
"""
import argparse

import spacy

SAMPLE = (
    "Vincent Vega met Jules Winnfield in Lisbon on Monday, and Reuters reported "
    "that Acme Holdings will sponsor the World Cup in Brazil."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="path of a trained pipeline, e.g. training/lstm/model-best")
    parser.add_argument("text", nargs="?", default=SAMPLE, help="text to analyse")
    args = parser.parse_args()
    nlp = spacy.load(args.model)
    doc = nlp(args.text)
    print(doc.text)
    if not doc.ents:
        print("(no entities found)")
    probs = {}
    for group in doc.spans.values():
        if "scores" in group.attrs:  # rnn_ner's entity probabilities
            probs.update(zip(((s.start, s.end, s.label_) for s in group), group.attrs["scores"]))
    for ent in doc.ents:
        p = probs.get((ent.start, ent.end, ent.label_))
        prob = "" if p is None else f"  p={float(p):.2f}"
        print(f"{ent.label_:<6} {ent.text!r} (tokens {ent.start}-{ent.end}){prob}")


if __name__ == "__main__":
    main()
