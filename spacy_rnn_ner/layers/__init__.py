from .rnn import RNN

__all__ = ["RNN"]
