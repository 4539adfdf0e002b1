"""What every stage script shares: the repository root, params.yaml, the `shots` list,
the domain map and the two profiles (``profile: quick`` and ``bert_cpu``)."""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def cells_root(root: Path = ROOT) -> Path:
    """The cell store (:mod:`hgda_core.cellstore`): ``HGDA_CELLS``, else ``cells/`` in the
    workspace (relative paths are relative to ``root``)."""
    return root / os.environ.get("HGDA_CELLS", "cells")


def format_hours(seconds: float) -> str:
    """Seconds as hours with one decimal (two below 0.1 h)."""
    hours = seconds / 3600
    return f"{hours:.1f}" if hours >= 0.1 else f"{hours:.2f}"


def load_params(root: Path = ROOT) -> dict[str, Any]:
    """The parsed params.yaml of the repository at ``root``."""
    return yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))


def shots_list(value: Any) -> list[int]:
    """`shots` may be one K or a list of K values (paper §4.2)."""
    values = value if isinstance(value, list) else [value]
    if not values or any(not isinstance(v, int) or v <= 0 for v in values):
        raise ValueError(f"shots must be a positive integer or a list of them, got {value!r}")
    return values


def domain_of(corpora: Sequence[str], domains: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Map each listed corpus to its domain.

    Raises:
        ValueError: when a corpus is in no domain, or in more than one.
    """
    owners: dict[str, list[str]] = {}
    for domain, members in domains.items():
        for name in members:
            owners.setdefault(name, []).append(domain)
    for name in corpora:
        if name not in owners:
            raise ValueError(f"corpus {name} is in no domain of params.yaml `domains`")
        if len(owners[name]) > 1:
            raise ValueError(f"corpus {name} is in several domains: {', '.join(owners[name])}")
    return {name: owners[name][0] for name in corpora}


def bert_cpu_active(params: Mapping[str, Any]) -> bool:
    """Whether the ``bert_cpu`` reductions apply: BERT on a CPU (``profile: auto``),
    always (``on``) or never (``off``)."""
    from hgda_core.device import resolve_device

    profile = str((params.get("bert_cpu") or {}).get("profile", "auto"))
    if profile not in ("auto", "on", "off"):
        raise ValueError(f"bert_cpu.profile must be auto, on or off, got {profile!r}")
    if params["model"].get("encoder", "bilstm") != "bert" or profile == "off":
        return False
    return profile == "on" or resolve_device(params.get("device", "auto")).type == "cpu"


PROFILES = ("converged", "quick")


def profile_of(params: Mapping[str, Any]) -> str:
    """``converged`` (the default protocol) or ``quick`` (the short look of ``quick:``)."""
    profile = str(params.get("profile", "converged"))
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return profile


def effective_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the profiles' ``meta`` and ``adapt`` keys laid over those sections:
    first ``quick:`` when ``profile: quick``, then ``bert_cpu:`` when that profile is
    active (:func:`bert_cpu_active`)."""
    out = {key: dict(value) if isinstance(value, Mapping) else value for key, value in params.items()}
    if profile_of(params) == "quick":
        for section in ("meta", "adapt"):
            out[section].update((params.get("quick") or {}).get(section) or {})
    if bert_cpu_active(params):
        for section in ("meta", "adapt"):
            out[section].update((params["bert_cpu"] or {}).get(section) or {})
    return out
