"""Meta-training that practises the adaptation: the inner loop's decoder start (source,
fresh, a learned shared start φ_0), β as its own rate, a meta-validation by the
adaptation's protocol, and the hardness ablation's methods."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from hgda_core.meta import MetaConfig, MetaLearner
from hgda_core.metatrain import MetaTrainParams, meta_train
from hgda_core.methods import method_spec
from hgda_core.models import build_tagger, param_group
from hgda_core.models.tagger import SHARED_DECODER
from hgda_core.optim import scaled_lr
from tests.conftest import TINY
from tests.test_meta import _hand_gammas, _hand_task, _tasks

DOMAINS = ("Disease", "Gene", "Species")


def _learner(model, **config):
    params = [p for p in model.parameters() if p.requires_grad]
    return MetaLearner(model, MetaConfig(**config), torch.optim.SGD(params, lr=config["alpha"]), grad_clip=None)


@pytest.mark.parametrize("steps", [1, 2])
def test_a_shared_decoder_start_gets_every_tasks_phi_gradient_and_the_sources_none(make_tagger, tiny_corpora, steps):
    """``inner_decoder: shared``: each task's inner loop starts its decoder from φ_0; the
    first-order meta-gradient of every task's decoder goes to φ_0 (weighted by eq. 2's
    γ^φ), the source decoders stay as they were; θ and ω as Algorithm 1."""
    model = make_tagger()
    torch.manual_seed(9)
    model.add_decoder(SHARED_DECODER)
    tasks = _tasks(tiny_corpora)
    alpha, beta, lam = 0.1, 0.05, 0.5
    results = []
    for task in tasks:
        clone = copy.deepcopy(model)
        clone.decoders[task.domain].load_state_dict(model.decoders[SHARED_DECODER].state_dict())
        lab, cls, grads = _hand_task(clone, task, beta, lam, steps)
        prefix = f"decoders.{task.domain}."
        grads = {(f"decoders.{SHARED_DECODER}." + n[len(prefix):] if n.startswith(prefix) else n): g for n, g in grads.items()}
        results.append((lab, cls, grads))
    gammas = _hand_gammas([r[0] for r in results], [r[1] for r in results], lam)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = {}
    for name, p in model.named_parameters():
        parts = [gammas[param_group(name)][i] * r[2][name] for i, r in enumerate(results) if name in r[2]]
        expected[name] = p.detach() - alpha * sum(parts) if parts else p.detach().clone()

    log = _learner(model, alpha=alpha, beta=beta, lam=lam, adaptation_steps=steps, inner_decoder="shared").step(tasks)
    assert log["gamma"]["phi"] == pytest.approx(gammas["phi"], rel=1e-5)
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6, msg=name)
    for domain in DOMAINS:
        assert all(torch.equal(p.detach(), before[f"decoders.{domain}.{n}"]) for n, p in model.decoders[domain].named_parameters())
    assert not torch.equal(model.decoders[SHARED_DECODER].emission.weight, before[f"decoders.{SHARED_DECODER}.emission.weight"])


def test_a_fresh_decoder_per_task_trains_theta_and_leaves_the_source_decoders(make_tagger, tiny_corpora):
    model = make_tagger()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    learner = _learner(model, alpha=0.1, beta=0.05, lam=0.5, inner_decoder="fresh")
    start = learner.task_params("Gene", torch.Generator().manual_seed(3))
    again = learner.task_params("Gene", torch.Generator().manual_seed(3))
    assert all(torch.equal(start[n], again[n]) for n in start)  # seeded starts are reproducible
    assert not torch.equal(start["decoders.Gene.emission.weight"], model.decoders["Gene"].emission.weight)
    assert start["encoder.lstm.weight_ih_l0"] is learner.params["encoder.lstm.weight_ih_l0"]
    grads = learner.meta_gradient_names({"decoders.Gene.emission.weight": torch.ones(1), "encoder.x": torch.ones(1)}, "Gene")
    assert list(grads) == ["encoder.x"]  # a fresh decoder's gradient has nowhere to go
    torch.manual_seed(0)
    learner.step(_tasks(tiny_corpora))
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n].detach(), before[n]) for n in before if n.startswith("decoders."))
    assert not torch.equal(after["encoder.lstm.weight_ih_l0"].detach(), before["encoder.lstm.weight_ih_l0"])
    # the meta-validation of a fresh start is a function of the weights: the same twice
    val = _tasks(tiny_corpora, seed=8)
    assert learner.validation_loss(val) == learner.validation_loss(val)


def test_the_inner_decoder_is_checked():
    with pytest.raises(ValueError, match="inner_decoder must be one of source, fresh, shared, got 'new'"):
        MetaConfig(inner_decoder="new")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="meta.inner_lr, meta.val_adapt_steps and meta.replicate must be >= 0"):
        MetaTrainParams(inner_lr=-0.1)


FAST = MetaTrainParams(tasks_per_batch=2, max_iterations=2, eval_every=2, patience=5, val_tasks=2, default_lr=0.2)


@pytest.fixture
def corpora(tiny_corpora):
    return {c.name: c for cs in tiny_corpora.values() for c in cs}


def test_beta_is_its_own_rate_and_a_shared_start_is_saved(corpora, tiny_vectors, monkeypatch, tmp_path):
    import hgda_core.metatrain as mt
    from hgda_core.models import load_tagger

    seen = {}

    class Recording(MetaLearner):
        def __init__(self, model, config, *args, **kwargs):
            seen["config"] = config
            super().__init__(model, config, *args, **kwargs)

    monkeypatch.setattr(mt, "MetaLearner", Recording)
    factory = lambda dec, cls: build_tagger(tiny_vectors, TINY, dec, cls)  # noqa: E731
    params = dataclasses.replace(FAST, inner_lr=0.05, inner_decoder="shared")
    model, _ = meta_train(corpora, factory, "Drug", "hgda", 4, params, seed=1, progress=False)
    config = seen["config"]
    assert config.alpha == pytest.approx(scaled_lr(0.2, 4)) and config.beta == pytest.approx(scaled_lr(0.05, 4))
    assert config.inner_decoder == "shared" and SHARED_DECODER in model.decoders
    model.save(tmp_path / "K4.pt")
    assert SHARED_DECODER in load_tagger(tmp_path / "K4.pt", tiny_vectors).decoders
    meta_train(corpora, factory, "Drug", "hgda", 4, FAST, seed=1, progress=False)
    assert seen["config"].beta == seen["config"].alpha  # inner_lr 0: β = α


def test_validation_by_the_adaptation_protocol_is_the_query_loss_of_fine_tuned_copies(corpora, tiny_vectors):
    from hgda_core.adapt import fine_tune
    from hgda_core.metatrain import adaptation_validator
    from hgda_core.sampler import TaskSampler

    model = build_tagger(tiny_vectors, TINY, list(DOMAINS), list(DOMAINS))
    sources = {d: [c for c in corpora.values() if c.domain == d] for d in DOMAINS}
    tasks = TaskSampler(sources, "devel", 4, "none", 5).fixed_tasks(3)
    validate = adaptation_validator(3, 0.1, FAST)
    expected = []
    for i, task in enumerate(tasks):
        adapted = fine_tune(model, task.domain, task.support, 3, 0.1, FAST.momentum, FAST.weight_decay, FAST.grad_clip, seed=i)
        batch = adapted.task_batch(task.query, [], task.domain)
        with torch.no_grad():
            expected.append(float(adapted(batch, batch.support, None)[0]))
    assert validate(model, tasks) == pytest.approx(sum(expected) / 3)
    learner = _learner(model, alpha=0.1, beta=0.1)
    inner = learner.validation_loss(tasks)
    learner.validator = validate
    assert learner.validation_loss(tasks) == pytest.approx(sum(expected) / 3) != pytest.approx(inner)


def test_the_ablation_methods_split_hgda_from_metaner():
    hgda, metaner = method_spec("hgda"), method_spec("metaner")
    uniform, grl = method_spec("hgda_uniform"), method_spec("hgda_grl")
    assert (uniform.weighting, uniform.adversarial) == (metaner.weighting, hgda.adversarial)
    assert (grl.weighting, grl.adversarial) == (hgda.weighting, metaner.adversarial)
    assert not uniform.ne_only and not grl.ne_only and uniform.learner == grl.learner == "meta"


def test_a_replicate_is_another_meta_training_seed_with_the_same_validation_tasks(corpora, tiny_vectors, monkeypatch):
    import hgda_core.metatrain as mt

    factory = lambda dec, cls: build_tagger(tiny_vectors, TINY, dec, cls)  # noqa: E731
    seen = []
    real = mt.train
    monkeypatch.setattr(mt, "train", lambda learner, sampler, val, *a, **k: seen.append(val) or real(learner, sampler, val, *a, **k))
    first, _ = meta_train(corpora, factory, "Drug", "hgda", 4, FAST, seed=1, progress=False)
    same, _ = meta_train(corpora, factory, "Drug", "hgda", 4, dataclasses.replace(FAST, replicate=0), seed=1, progress=False)
    other, _ = meta_train(corpora, factory, "Drug", "hgda", 4, dataclasses.replace(FAST, replicate=1), seed=1, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), same.state_dict().values()))
    assert not torch.equal(first.encoder.lstm.weight_ih_l0, other.encoder.lstm.weight_ih_l0)
    assert [t.support for t in seen[0]] == [t.support for t in seen[2]]  # the same validation tasks
