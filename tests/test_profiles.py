"""The protocol profiles of params.yaml: ``profile: quick`` and its overlay."""

from __future__ import annotations

import pytest

from stages.common import effective_params, load_params


def _params(profile: str) -> dict:
    return {
        "profile": profile, "model": {"encoder": "bilstm"},
        "meta": {"max_iterations": 1500, "eval_every": 50, "default_lr": 0.01},
        "adapt": {"steps": 200, "default_lr": 0.1, "repeats": 20},
        "quick": {"meta": {"max_iterations": 100, "eval_every": 20}, "adapt": {"steps": 30}},
    }  # fmt: skip


def test_quick_lays_its_keys_over_meta_and_adapt_only_when_chosen() -> None:
    quick = effective_params(_params("quick"))
    assert quick["meta"] == {"max_iterations": 100, "eval_every": 20, "default_lr": 0.01}
    assert quick["adapt"] == {"steps": 30, "default_lr": 0.1, "repeats": 20}
    converged = effective_params(_params("converged"))
    assert converged["meta"]["max_iterations"] == 1500 and converged["adapt"]["steps"] == 200
    given = _params("quick")
    effective_params(given)
    assert given["meta"]["max_iterations"] == 1500  # the caller's params are not changed


def test_an_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="profile must be one of converged, quick, got 'fast'"):
        effective_params(_params("fast"))


def test_the_shipped_quick_profile_is_the_short_look() -> None:
    params = load_params()
    assert params["profile"] == "converged"
    quick = effective_params({**params, "profile": "quick"})
    assert (quick["meta"]["max_iterations"], quick["meta"]["schedule_horizon"], quick["adapt"]["steps"]) == (100, 0, 30)
    assert quick["meta"]["snapshots"] == [] and quick["meta"]["min_rel_delta"] == 0.0
