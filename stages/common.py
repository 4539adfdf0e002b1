"""What every stage script shares: the repository root, params.yaml, the `shots` list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_params() -> dict[str, Any]:
    """The parsed params.yaml of the repository."""
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def shots_list(value: Any) -> list[int]:
    """`shots` may be one K or a list of K values (paper §4.2)."""
    values = value if isinstance(value, list) else [value]
    if not values or any(not isinstance(v, int) or v <= 0 for v in values):
        raise ValueError(f"shots must be a positive integer or a list of them, got {value!r}")
    return values
