from .cells import KernelsWarning, backend_info
from .char_embed import CharEmbed
from .crf_layer import CRF
from .rnn import RNN
from .with_padded_buckets import with_padded_buckets

__all__ = ["CharEmbed", "CRF", "RNN", "with_padded_buckets", "KernelsWarning", "backend_info"]
