"""The compared methods, each one value of the ``method`` param (paper §4.2).

=========  ===========  ==================  ===========  =====================================
method     weighting    domain head         sampler      paper
=========  ===========  ==================  ===========  =====================================
hgda       eq. 2        classifier (+λ)     all          HGDA
hgda_nes   eq. 2        classifier (+λ)     NE-only      HGDA-NEs
metaner    uniform 1/m  reversal (−λ)       all          MetaNER (Li et al., 2020b)
transfer   —            none (λ = 0)        all          multi-source supervised baseline
=========  ===========  ==================  ===========  =====================================
"""

from __future__ import annotations

from dataclasses import dataclass

from hgda_core.hardness import Weighting


@dataclass(frozen=True)
class MethodSpec:
    """How a method sets up meta-training."""

    name: str
    learner: str  # "meta" or "transfer"
    weighting: Weighting
    adversarial: bool
    ne_only: bool


METHODS: dict[str, MethodSpec] = {
    "hgda": MethodSpec("hgda", "meta", "hardness", adversarial=False, ne_only=False),
    "hgda_nes": MethodSpec("hgda_nes", "meta", "hardness", adversarial=False, ne_only=True),
    "metaner": MethodSpec("metaner", "meta", "uniform", adversarial=True, ne_only=False),
    "transfer": MethodSpec("transfer", "transfer", "uniform", adversarial=False, ne_only=False),
}


def method_spec(name: str) -> MethodSpec:
    """The spec of a meta-training method; a clear error for an unknown name."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}") from None
