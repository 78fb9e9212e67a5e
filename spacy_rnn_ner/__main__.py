"""`python -m spacy_rnn_ner COMMAND ...`: the package's command-line tools."""
import sys
from typing import Callable, Dict, Optional, Sequence

from .cli.calibrate import calibrate_cli
from .cli.debug_data import debug_data_cli
from .cli.render import displacy_cli

COMMANDS: Dict[str, Callable[[Sequence[str]], int]] = {
    "calibrate": calibrate_cli,
    "debug-data": debug_data_cli,
    "displacy": displacy_cli,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        names = ", ".join(sorted(COMMANDS))
        print(f"usage: python -m spacy_rnn_ner COMMAND ... (commands: {names})", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
