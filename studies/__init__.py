"""The studies: analyses of the protocol whose tables are committed under ``reports/``.

Each module runs from the repository root as ``python -m studies.<name>``; together they
are the stages of the second DVC pipeline ``studies/dvc.yaml``, which reads the main
pipeline's outputs (``data/``, ``models/metatrain``, ``reports/metatrain``) and records
its own lock, ``studies/dvc.lock``.  See ``studies/README.md``.
"""
