"""Command-line tools: `python -m spacy_rnn_ner COMMAND ...`."""
