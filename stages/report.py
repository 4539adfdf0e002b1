"""Stage ``report``: Tables 1, 3, 4 and 5 of the paper, significance tests, the comparison
with the paper's figures and the figures, from the adaptation scores and the logs.

Reads the ``corpora``, ``domains``, ``shots`` and ``report`` sections of params.yaml,
``reports/scores.csv`` and whatever ``reports/metatrain/<encoder>/<held_out>-<method>/`` runs of ``report.table1_encoder``
exist (logs resolved through ``data/processed``), and writes under ``reports/``:
``table{1,3,4,5}.{md,tex}``, ``significance.{md,tex,csv}``, ``paper_vs_ours.{md,csv}``,
``plots/{f1_vs_k,hardness_vs_entities,metatrain_curves}.png``, ``results_at_a_glance.md`` (Overall
F1 per method and K beside the paper's, linked from the top README) and ``README.md``.

Run from the repository root: ``python -m stages.report``.
"""

from __future__ import annotations

import logging
import sys

from hgda_core.io import setup_logging
from hgda_core.report import ReportConfig, build_report
from hgda_core.report.tables import read_scores
from stages.common import ROOT, load_params, shots_list

SCORES = ROOT / "reports" / "scores.csv"

log = logging.getLogger("stages.report")


def main() -> None:
    """Entry point: exit 1 with a one-line error when scores.csv is missing or malformed."""
    setup_logging()
    params = load_params()
    try:
        config = ReportConfig(**params.get("report", {}))
    except TypeError as err:
        sys.exit(f"error: params.yaml `report` section: {err}")
    try:
        scores = read_scores(SCORES)
    except FileNotFoundError:
        sys.exit(f"error: {SCORES.relative_to(ROOT)} not found; run the adaptation stage first")
    except ValueError as err:
        sys.exit(f"error: {err}")
    if scores.empty:
        log.warning("%s has no rows: the result tables say so and stay empty", SCORES.relative_to(ROOT))
    build_report(
        scores,
        ROOT / "reports",
        ROOT / "reports" / "metatrain" / config.table1_encoder,
        ROOT / "data" / "processed",
        params["corpora"],
        params["domains"],
        shots_list(params["shots"]),
        config,
        at_a_glance=True,
    )


if __name__ == "__main__":
    main()
