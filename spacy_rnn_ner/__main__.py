"""`python -m spacy_rnn_ner COMMAND ...`: dispatches to the subcommands."""
import sys
from typing import Callable, Dict, List, Optional

from .cli.annotate import annotate_cli

# Each command takes its own arguments (after the command name) and returns
# the exit status.
COMMANDS: Dict[str, Callable[[List[str]], int]] = {
    "annotate": annotate_cli,
}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        names = ", ".join(sorted(COMMANDS))
        print(f"usage: python -m spacy_rnn_ner COMMAND [ARGS...] (COMMAND: {names}; "
              "COMMAND --help for its arguments)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
