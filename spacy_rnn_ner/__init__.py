"""spaCy named entity recognition with recurrent neural networks written as Thinc layers."""
from . import architectures, pipeline, readers, scoring  # noqa: F401  (run the registry decorators)
from .about import __version__
from .layers.rnn import RNN
from .pipeline import RNNEntityRecognizer

__all__ = ["RNN", "RNNEntityRecognizer", "__version__"]
