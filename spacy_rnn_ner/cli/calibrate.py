"""`python -m spacy_rnn_ner calibrate MODEL DEV.spacy [--component rnn_ner]
[--output MODEL_OUT]`: fit the temperature of an `rnn_ner` component on gold
data, print it with the calibration error before and after, and optionally
save the pipeline with the fitted temperature in its config.cfg."""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..calibration import T_RANGE, Calibration, set_temperature, temperature_search
from ._util import CLIError, fail, load_pipeline_and_docs


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spacy_rnn_ner calibrate",
        description="Fit the temperature of an rnn_ner component on gold data (e.g. dev).",
    )
    parser.add_argument("model", help="pipeline directory or installed package")
    parser.add_argument("data", type=Path, help="gold DocBin (.spacy) with entities")
    parser.add_argument("--component", "-c", default="rnn_ner", help="component name (default rnn_ner)")
    parser.add_argument(
        "--output", "-o", type=Path, default=None,
        help="save the pipeline here with the fitted temperature in config.cfg",
    )
    return parser.parse_args(argv)


def calibrate_cli(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command. RETURNS (int): the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        nlp, docs = load_pipeline_and_docs(args.model, args.data)
        fit = temperature_search(nlp, docs, args.component)
    except (CLIError, ValueError) as e:
        return fail(str(e))
    print(f"{len(docs)} docs, {fit.before.n_spans} predicted entities judged")
    print(_line("before", fit.before))
    print(_line("after ", fit.after) + "  (in-sample: measured on the fitting data)")
    print(f"temperature = {fit.temperature:.4f}")
    if fit.at_bound:
        print(f"warning: the best T is at the edge of the search range {T_RANGE}")
    if args.output is not None:
        set_temperature(nlp, args.component, fit.temperature)
        nlp.to_disk(args.output)
        print(f"saved the pipeline with temperature {fit.temperature:.4f} to {args.output}")
    return 0


def _line(name: str, c: Calibration) -> str:
    return f"{name}: T = {c.temperature:.4f}  ECE = {c.ece:.4f}  NLL = {c.nll:.4f}"


