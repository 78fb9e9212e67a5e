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
    for ent in doc.ents:
        print(f"{ent.label_:<6} {ent.text!r} (tokens {ent.start}-{ent.end})")


if __name__ == "__main__":
    main()
