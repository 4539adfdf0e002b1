"""hgda_core: hardness-guided domain adaptation for few-shot biomedical NER.

A library that stands without DVC: data types and I/O (:mod:`hgda_core.data`), corpus
download and statistics, word vectors, the BiLSTM-CRF tagger, task samplers, the
hardness-guided bilevel meta-learning loop, K-shot adaptation, metrics, significance
tests and table rendering.
"""

__version__ = "0.1.0"

_API = ("AdaptedTagger", "adapt_tagger", "read_labelled")
"""The own-corpus API (:mod:`hgda_core.usertagger`), importable from the package root."""


def __getattr__(name: str) -> object:
    # Lazy, so that `import hgda_core` stays light (no torch) for the stages that only need data.
    if name in _API:
        from hgda_core import usertagger

        return getattr(usertagger, name)
    raise AttributeError(f"module 'hgda_core' has no attribute {name!r}")
