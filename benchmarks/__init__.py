"""The benchmarks behind ``make bench``: ``python -m benchmarks.bench`` (training and
decoding of the tagger) and ``python -m benchmarks.bench_tagging`` (``hgda tag`` and
``hgda adapt``), both writing sections of ``reports/bench.json``."""
