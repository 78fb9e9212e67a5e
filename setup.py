"""Builds the optional C kernels; everything else is in pyproject.toml."""
import sys

from setuptools import Extension, setup

# -fno-trapping-math lets gcc vectorise the branch-free exp (see the .c file).
extra = [] if sys.platform == "win32" else ["-O3", "-std=c99", "-fno-trapping-math"]
setup(
    ext_modules=[
        Extension(
            "spacy_rnn_ner.layers._cpu_kernels",
            ["spacy_rnn_ner/layers/_cpu_kernels.c"],
            extra_compile_args=extra,
        )
    ]
)
