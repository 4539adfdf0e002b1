"""hgda_core: hardness-guided domain adaptation for few-shot biomedical NER.

A library that stands without DVC: data types and I/O (:mod:`hgda_core.data`), corpus
download and statistics, word vectors, the BiLSTM-CRF tagger, task samplers, the
hardness-guided bilevel meta-learning loop, K-shot adaptation, metrics, significance
tests and table rendering.
"""

__version__ = "0.1.0"
