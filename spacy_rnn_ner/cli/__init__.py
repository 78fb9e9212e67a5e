"""Subcommands of `python -m spacy_rnn_ner`, one module each."""
