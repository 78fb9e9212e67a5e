from .attention import SelfAttention
from .cells import KernelsWarning, backend_info
from .char_embed import CharEmbed
from .crf_layer import CRF
from .rnn import RNN

__all__ = ["CharEmbed", "CRF", "RNN", "SelfAttention", "KernelsWarning", "backend_info"]
