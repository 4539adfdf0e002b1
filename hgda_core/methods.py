"""The compared methods, each one value of the ``method`` param (paper §4.2).

=========  ===========  ==================  ===========  =====================================
method     weighting    domain head         sampler      paper
=========  ===========  ==================  ===========  =====================================
hgda       eq. 2        classifier (+λ)     all          HGDA
hgda_nes   eq. 2        classifier (+λ)     NE-only      HGDA-NEs
metaner    uniform 1/m  reversal (−λ)       all          MetaNER (Li et al., 2020b)
transfer   —            none (λ = 0)        all          multi-source supervised baseline
=========  ===========  ==================  ===========  =====================================

The ablation splits HGDA − MetaNER, which differ in two things at once, into the share of
eq. 2's weights and the share of the domain head's sign:

============  ===========  ==================  ===========  ==================================
method        weighting    domain head         sampler      what it isolates
============  ===========  ==================  ===========  ==================================
hgda_uniform  uniform 1/m  classifier (+λ)     all          HGDA without eq. 2's weights
hgda_grl      eq. 2        reversal (−λ)       all          MetaNER with eq. 2's weights
============  ===========  ==================  ===========  ==================================

HGDA − MetaNER = (HGDA − hgda_uniform) [the weights, under +λ] + (hgda_uniform − MetaNER)
[the head's sign, under uniform weights]; hgda_grl gives the other order of the two steps.
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
    "hgda_uniform": MethodSpec("hgda_uniform", "meta", "uniform", adversarial=False, ne_only=False),
    "hgda_grl": MethodSpec("hgda_grl", "meta", "hardness", adversarial=True, ne_only=False),
}


def method_spec(name: str) -> MethodSpec:
    """The spec of a meta-training method; a clear error for an unknown name."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}") from None
