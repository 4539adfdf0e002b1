"""``python -m hgda_core``: the ``hgda`` command (:mod:`hgda_core.cli`)."""

from hgda_core.cli import run

if __name__ == "__main__":
    run()
