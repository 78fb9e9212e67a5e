"""`python -m spacy_rnn_ner COMMAND ...`: dispatches to the subcommands."""
import sys
from typing import Callable, Dict, Optional, Sequence

from .cli.annotate import annotate_cli
from .cli.calibrate import calibrate_cli
from .cli.debug_data import debug_data_cli
from .cli.distill import distill_cli
from .cli.ensemble import ensemble_cli
from .cli.render import displacy_cli

# Each command takes its own arguments (after the command name) and returns
# the exit status.
COMMANDS: Dict[str, Callable[[Sequence[str]], int]] = {
    "annotate": annotate_cli,
    "calibrate": calibrate_cli,
    "debug-data": debug_data_cli,
    "displacy": displacy_cli,
    "distill": distill_cli,
    "ensemble": ensemble_cli,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        names = ", ".join(sorted(COMMANDS))
        print(f"usage: python -m spacy_rnn_ner COMMAND [ARGS...] (COMMAND: {names}; "
              "COMMAND --help for its arguments)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
