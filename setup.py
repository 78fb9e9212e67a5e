"""Builds the optional C kernels; everything else is in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler, an
unsupported one) setuptools prints a warning, the install goes on, and the
RNN layer runs on its numpy path (`spacy_rnn_ner.layers.cells` warns at
import; `backend_info()` tells which path is in use)."""
import sys

from setuptools import Extension, setup

# -fno-trapping-math lets gcc and clang vectorise the branch-free exp (see the
# .c file); MSVC takes its defaults.
extra = [] if sys.platform == "win32" else ["-O3", "-std=c99", "-fno-trapping-math"]
setup(
    ext_modules=[
        Extension(
            "spacy_rnn_ner.layers._cpu_kernels",
            ["spacy_rnn_ner/layers/_cpu_kernels.c"],
            depends=["spacy_rnn_ner/layers/_cpu_kernels.h"],
            extra_compile_args=extra,
            optional=True,
        )
    ]
)
