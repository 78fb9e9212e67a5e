from .cells import KernelsWarning, backend_info
from .char_embed import CharEmbed
from .crf_layer import CRF
from .rnn import RNN

__all__ = ["CharEmbed", "CRF", "RNN", "KernelsWarning", "backend_info"]
