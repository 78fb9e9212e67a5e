"""spaCy named entity recognition with recurrent neural networks written as Thinc layers."""
from .layers.rnn import RNN
from . import architectures  # noqa: F401  (registers the architectures)

__all__ = ["RNN"]
