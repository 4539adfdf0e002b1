"""Algorithms 1 and 2 and eq. 2, proven against hand computations."""

from __future__ import annotations

import copy
import types

import pytest
import torch

from hgda_core.hardness import hardness, task_weights
from hgda_core.meta import MetaConfig, MetaLearner, conjugate_gradient
from hgda_core.models import param_group, scale_gradient
from hgda_core.optim import linear_schedule, scaled_lr, sgd
from hgda_core.sampler import TaskSampler
from hgda_core.transfer import TransferLearner


def test_hardness_is_eq2_ratio_and_sums_to_one():
    gamma = hardness(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert gamma.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert float(gamma.sum()) == pytest.approx(1.0)


def test_task_weights_per_group_follow_eq2():
    lab, cls = torch.tensor([2.0, 6.0]), torch.tensor([3.0, 1.0])
    w = task_weights(lab, cls, lam=0.5, weighting="hardness")
    assert w["theta"].tolist() == pytest.approx([3.5 / 10.0, 6.5 / 10.0])  # L_i = lab + λ cls
    assert w["phi"].tolist() == pytest.approx([0.25, 0.75])
    assert w["omega"].tolist() == pytest.approx([0.75, 0.25])
    uniform = task_weights(lab, cls, lam=0.5, weighting="uniform")
    assert all(u.tolist() == [0.5, 0.5] for u in uniform.values())


def test_small_losses_keep_their_ratio():
    """Only a zero (or non-finite) total falls back to uniform weights, not a small one."""
    assert hardness(torch.tensor([0.1, 0.3])).tolist() == pytest.approx([0.25, 0.75])


def test_unknown_weighting_is_a_clear_error():
    with pytest.raises(ValueError, match="weighting must be hardness or uniform, got 'loss'"):
        task_weights(torch.ones(2), torch.ones(2), 1.0, "loss")  # type: ignore[arg-type]


def test_all_zero_losses_give_finite_uniform_weights():
    gamma = hardness(torch.zeros(4))
    assert torch.isfinite(gamma).all()
    assert gamma.tolist() == [0.25] * 4


def test_hardness_rejects_negative_losses():
    with pytest.raises(ValueError, match="non-negative"):
        hardness(torch.tensor([1.0, -1.0]))


def test_eq3_learning_rate():
    assert scaled_lr(1e-2, 32) == pytest.approx(1e-2)
    assert scaled_lr(1e-2, 8) == pytest.approx(5e-3)


def test_scale_gradient_scales_and_reverses():
    x = torch.ones(3, requires_grad=True)
    (scale_gradient(x, -0.5) * 2).sum().backward()
    assert x.grad.tolist() == [-1.0, -1.0, -1.0]


def test_param_groups_cover_theta_phi_omega(make_tagger):
    groups = {param_group(n) for n, _ in make_tagger().named_parameters()}
    assert groups == {"theta", "phi", "omega"}


# --- a hand-written reference of Algorithms 1 and 2 (deep copies, separate losses) -----


def _hand_losses(model, task, lab_sentences):
    """L^lab on ``lab_sentences`` and L^cls on the query set, each from its own batch of
    the raw sentences (not the code's joint ``task_batch`` and its row slices)."""
    lab_batch = model.task_batch(lab_sentences, [], task.domain)
    lab, _ = model(lab_batch, slice(None), None)
    cls_batch = model.task_batch([], task.query, task.domain)
    _, cls = model(cls_batch, None, slice(None))
    return lab, cls


def _hand_group_grads(model, lab, cls, lam, domain):
    """∇θ(L_lab + λL_cls), ∇φ L_lab, ∇ω L_cls by separate autograd calls."""
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or (name.startswith("decoders.") and not name.startswith(f"decoders.{domain}.")):
            continue
        group = param_group(name)
        loss = {"theta": lab + lam * cls, "phi": lab, "omega": cls}[group]
        (g,) = torch.autograd.grad(loss, p, retain_graph=True, allow_unused=True)
        out[name] = torch.zeros_like(p) if g is None else g
    return out


def _hand_task(model, task, beta, lam, steps, theta_scale=1.0, outer="support"):
    """Alg. 2 on a deep copy: the adapted (L^lab, L^cls) and the first-order meta-gradient."""
    clone = copy.deepcopy(model)
    for _ in range(steps):  # lines 2-9, on T^S (lab) and T^Q (cls)
        lab, cls = _hand_losses(clone, task, task.support)
        grads = _hand_group_grads(clone, lab, cls, lam, task.domain)
        with torch.no_grad():
            for name, p in clone.named_parameters():
                if name in grads:
                    p -= beta * (theta_scale if param_group(name) == "theta" else 1.0) * grads[name]
    lab, cls = _hand_losses(clone, task, task.support if outer == "support" else task.query)  # lines 10-11
    return lab.item(), cls.item(), _hand_group_grads(clone, lab, cls, lam, task.domain)


def _hand_gammas(labs, clss, lam):
    return {
        "theta": [(l + lam * c) / sum(a + lam * b for a, b in zip(labs, clss)) for l, c in zip(labs, clss)],
        "phi": [l / sum(labs) for l in labs],
        "omega": [c / sum(clss) for c in clss],
    }


def _hand_meta_gradient(model, tasks, beta, lam, steps, theta_scale=1.0, outer="support"):
    """Σ_i γ_i^g ∇L_i per parameter (Alg. 1 lines 9-12 before the step), and the γ."""
    results = [_hand_task(model, t, beta, lam, steps, theta_scale, outer) for t in tasks]
    gammas = _hand_gammas([r[0] for r in results], [r[1] for r in results], lam)
    total = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            parts = [gammas[param_group(name)][i] * r[2][name] for i, r in enumerate(results) if name in r[2]]
            total[name] = sum(parts) if parts else None
    return total, gammas


def _hand_meta_step(model, tasks, alpha, beta, lam, steps):
    total, gammas = _hand_meta_gradient(model, tasks, beta, lam, steps)
    with torch.no_grad():
        expected = {n: p - alpha * total[n] if total[n] is not None else p.clone()
                    for n, p in model.named_parameters() if p.requires_grad}
    return expected, gammas


def _tasks(tiny_corpora, k=3, seed=5, domains=("Disease", "Gene", "Species", "Gene")):
    source = {d: tiny_corpora[d] for d in ("Disease", "Gene", "Species")}
    return [TaskSampler(source, "train", k, seed=seed).sample(d) for d in domains]


@pytest.mark.parametrize("steps", [1, 2])
def test_first_order_meta_step_equals_hand_written_sgd(make_tagger, tiny_corpora, steps):
    model = make_tagger()
    tasks = _tasks(tiny_corpora)
    alpha, beta, lam = 0.1, 0.05, 0.5
    expected, gammas = _hand_meta_step(model, tasks, alpha, beta, lam, steps)

    config = MetaConfig(alpha=alpha, beta=beta, lam=lam, adaptation_steps=steps)
    params = [p for p in model.parameters() if p.requires_grad]
    learner = MetaLearner(model, config, torch.optim.SGD(params, lr=alpha), grad_clip=None)
    log = learner.step(tasks)

    for g in ("theta", "phi", "omega"):
        assert log["gamma"][g] == pytest.approx(gammas[g], rel=1e-5)
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_outer_lab_on_query_and_theta_rate_scale_momentum_and_clipping_by_hand(make_tagger, tiny_corpora):
    """Two iterations with ``outer_lab_set: query``, θ's inner and outer rates scaled by
    0.3, SGD momentum 0.9 and the meta-gradient clipped to norm 0.05, against a hand-written
    momentum buffer and clipping."""
    alpha, beta, lam, scale, clip, mu = 0.2, 0.1, 0.7, 0.3, 0.05, 0.9
    batches = [_tasks(tiny_corpora, seed=5), _tasks(tiny_corpora, seed=6, domains=("Species", "Disease", "Gene"))]
    reference = make_tagger()
    model = make_tagger()
    config = MetaConfig(alpha=alpha, beta=beta, lam=lam, outer_lab_set="query", theta_lr_scale=scale)
    theta = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    optimizer = torch.optim.SGD([{"params": theta, "lr": alpha * scale}, {"params": rest}], lr=alpha, momentum=mu)
    learner = MetaLearner(model, config, optimizer, grad_clip=clip)
    buffers: dict[str, torch.Tensor] = {}
    clipped = []
    for tasks in batches:
        learner.step(tasks)
        total, _ = _hand_meta_gradient(reference, tasks, beta, lam, 1, theta_scale=scale, outer="query")
        present = {n: g for n, g in total.items() if g is not None}
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in present.values()))
        factor = min(1.0, clip / (float(norm) + 1e-6))
        clipped.append(factor < 1.0)
        with torch.no_grad():
            for name, p in reference.named_parameters():
                if name not in present:
                    continue
                g = present[name] * factor
                buffers[name] = g.clone() if name not in buffers else mu * buffers[name] + g
                p -= alpha * (scale if name.startswith("encoder.") else 1.0) * buffers[name]
    assert all(clipped)  # the clip is active in both iterations
    got = dict(model.named_parameters())
    for name, p in reference.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(got[name].detach(), p.detach(), rtol=1e-4, atol=1e-6, msg=name)


def test_outer_lab_set_query_differs_from_support(make_tagger, tiny_corpora):
    tasks = _tasks(tiny_corpora)[:1]
    out = {}
    for outer in ("support", "query"):
        model = make_tagger()
        learner = MetaLearner(model, MetaConfig(outer_lab_set=outer), torch.optim.SGD(model.parameters(), lr=0.1))
        out[outer] = learner.task_result(model.task_batch(tasks[0].support, tasks[0].query, tasks[0].domain))
        lab, _, _ = _hand_task(make_tagger(), tasks[0], 0.01, 1.0, 1, outer=outer)
        assert out[outer].lab == pytest.approx(lab, rel=1e-5)
    assert out["support"].lab != pytest.approx(out["query"].lab, rel=1e-3)


def test_uniform_weights_give_mean_of_task_gradients(make_tagger, tiny_corpora):
    model = make_tagger()
    source = {d: tiny_corpora[d] for d in ("Disease", "Gene", "Species")}
    tasks = TaskSampler(source, "train", 3, seed=7).fixed_tasks(3)
    learner = MetaLearner(model, MetaConfig(weighting="uniform"), torch.optim.SGD(model.parameters(), lr=1.0))
    results = [learner.task_result(model.task_batch(t.support, t.query, t.domain)) for t in tasks]
    weights = task_weights(torch.tensor([r.lab for r in results]), torch.tensor([r.cls for r in results]), 1.0, "uniform")
    total = learner.aggregate(results, weights)
    name = "encoder.lstm.weight_ih_l0"
    torch.testing.assert_close(total[name], sum(r.grads[name] for r in results) / 3)


def test_hardness_weights_change_the_update(make_tagger, tiny_corpora):
    source = {d: tiny_corpora[d] for d in ("Disease", "Gene", "Species")}
    tasks = TaskSampler(source, "train", 3, seed=3).fixed_tasks(3)
    finals = []
    for weighting in ("hardness", "uniform"):
        model = make_tagger()
        learner = MetaLearner(model, MetaConfig(weighting=weighting), torch.optim.SGD(model.parameters(), lr=0.1))
        learner.step(tasks)
        finals.append(model.encoder.lstm.weight_ih_l0.detach().clone())
    assert not torch.allclose(finals[0], finals[1])


def test_metaner_reverses_the_domain_gradient_into_theta_scaled_by_lambda(make_tagger, tiny_corpora):
    """MetaNER at λ = 0.5: L^cls sends −λ × its unscaled gradient into θ; ω gets the unscaled one."""
    source = {d: tiny_corpora[d] for d in ("Disease", "Gene", "Species")}
    task = TaskSampler(source, "train", 3, seed=3).sample("Gene")
    grads = {}
    for name, config in {"unscaled": MetaConfig(lam=1.0), "metaner": MetaConfig(lam=0.5, adversarial=True),
                         "hgda": MetaConfig(lam=0.5)}.items():
        model = make_tagger()
        learner = MetaLearner(model, config, torch.optim.SGD(model.parameters(), lr=0.1))
        batch = model.task_batch(task.support, task.query, task.domain)
        _, cls = learner.losses(learner.task_params("Gene"), batch, None, batch.query)
        grads[name] = learner._grads(cls, learner.task_params("Gene"))
    assert MetaConfig(lam=0.5, adversarial=True).cls_grad_scale == -0.5
    for name in ("encoder.lstm.weight_ih_l0", "encoder.char_cnn.weight"):
        torch.testing.assert_close(grads["metaner"][name], -0.5 * grads["unscaled"][name])
        torch.testing.assert_close(grads["hgda"][name], 0.5 * grads["unscaled"][name])
    torch.testing.assert_close(grads["metaner"]["domain_head.weight"], grads["unscaled"]["domain_head.weight"])


def test_conjugate_gradient_solves_small_quadratic_system():
    torch.manual_seed(0)
    m = torch.randn(5, 5, dtype=torch.float64)
    hessian = m @ m.T + 0.5 * torch.eye(5, dtype=torch.float64)  # of L(x) = ½ xᵀHx
    reg = 2.0
    a = torch.eye(5, dtype=torch.float64) + hessian / reg  # iMAML's system matrix
    b = torch.randn(5, dtype=torch.float64)
    x = conjugate_gradient(lambda v: [a @ v[0]], [b], steps=5)[0]
    torch.testing.assert_close(x, torch.linalg.solve(a, b))


def test_implicit_gradient_runs_and_differs_from_first_order(make_tagger, tiny_corpora):
    source = {d: tiny_corpora[d] for d in ("Disease", "Gene", "Species")}
    task = TaskSampler(source, "train", 3, seed=3).sample("Disease")
    out = {}
    for gradient in ("first_order", "implicit"):
        model = make_tagger()
        learner = MetaLearner(model, MetaConfig(gradient=gradient, implicit_reg=0.5, cg_steps=3), torch.optim.SGD(model.parameters(), lr=0.1))
        out[gradient] = learner.task_result(model.task_batch(task.support, task.query, task.domain))
    name = "encoder.lstm.weight_hh_l0"
    assert torch.isfinite(out["implicit"].grads[name]).all()
    assert not torch.allclose(out["implicit"].grads[name], out["first_order"].grads[name])


class _Quadratic(torch.nn.Module):
    """A toy with the tagger's interface: L^lab = ½ (w − a)ᵀ A (w − a) on any rows and
    L^cls = ½ c ||w − b||² on the cls rows (c = 0: no L^cls)."""

    def __init__(self, hessian, centre, start, c=0.0, cls_centre=None):
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.w = torch.nn.Parameter(start.clone())
        self.hessian, self.centre, self.c = hessian, centre, c
        self.cls_centre = centre if cls_centre is None else cls_centre

    def forward(self, batch, lab_rows, cls_rows, cls_grad_scale=1.0):
        d = self.encoder.w - self.centre
        zero = d.new_zeros(())
        e = self.encoder.w - self.cls_centre
        cls = 0.5 * self.c * e @ e if cls_rows is not None else zero
        return (0.5 * d @ self.hessian @ d if lab_rows is not None else zero), cls


def test_implicit_gradient_equals_the_closed_form_on_a_quadratic():
    """iMAML with 3 proximal inner steps: θ_i by hand, then g = (I + A/reg)⁻¹ A (θ_i − a)."""
    torch.manual_seed(0)
    m = torch.randn(3, 3, dtype=torch.float64)
    hessian = m @ m.T + torch.eye(3, dtype=torch.float64)
    centre, start = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    beta, reg, steps = 0.05, 2.0, 3
    model = _Quadratic(hessian, centre, start)
    config = MetaConfig(beta=beta, adaptation_steps=steps, gradient="implicit", implicit_reg=reg, cg_steps=3)
    learner = MetaLearner(model, config, torch.optim.SGD(model.parameters(), lr=0.1))
    batch = types.SimpleNamespace(support=slice(0, 1), query=slice(1, 2), domain="toy")
    result = learner.task_result(batch)

    w = start.clone()
    for _ in range(steps):  # inner SGD on L + reg/2 ||w − θ||²
        w = w - beta * (hessian @ (w - centre) + reg * (w - start))
    expected = torch.linalg.solve(torch.eye(3, dtype=torch.float64) + hessian / reg, hessian @ (w - centre))
    torch.testing.assert_close(result.grads["encoder.w"], expected)
    assert result.lab == pytest.approx(float(0.5 * (w - centre) @ hessian @ (w - centre)))
    first = MetaLearner(_Quadratic(hessian, centre, start), MetaConfig(beta=beta, adaptation_steps=steps),
                        torch.optim.SGD([torch.zeros(1)], lr=0.1)).task_result(batch)
    w_plain = start.clone()
    for _ in range(steps):  # first order: no proximal term, the gradient at θ_i itself
        w_plain = w_plain - beta * hessian @ (w_plain - centre)
    torch.testing.assert_close(first.grads["encoder.w"], hessian @ (w_plain - centre))


def _short_training(make_tagger, tiny_corpora, seed, learner_cls=MetaLearner, config=None, iterations=30):
    torch.manual_seed(seed)
    model = make_tagger(seed=seed)
    source = {d: tiny_corpora[d] for d in ("Disease", "Gene", "Species")}
    sampler = TaskSampler(source, "train", 4, seed=seed)
    val = TaskSampler(source, "devel", 4, seed=seed + 1).fixed_tasks(6)
    config = config or MetaConfig(alpha=0.05, beta=0.05)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = sgd(params, config.alpha)
    learner = learner_cls(model, config, opt, linear_schedule(opt, iterations))
    before = learner.validation_loss(val)
    for _ in range(iterations):
        learner.step([sampler.sample() for _ in range(4)])
    return model, before, learner.validation_loss(val)


def test_short_meta_training_lowers_meta_validation_loss(make_tagger, tiny_corpora):
    _, before, after = _short_training(make_tagger, tiny_corpora, seed=1)
    assert after < 0.8 * before


def test_transfer_training_lowers_validation_loss(make_tagger, tiny_corpora):
    _, before, after = _short_training(make_tagger, tiny_corpora, 1, TransferLearner, MetaConfig(alpha=0.05, beta=0.05, lam=0.0))
    assert after < 0.8 * before


def test_same_seed_gives_identical_weights(make_tagger, tiny_corpora):
    a, _, _ = _short_training(make_tagger, tiny_corpora, seed=4, iterations=5)
    b, _, _ = _short_training(make_tagger, tiny_corpora, seed=4, iterations=5)
    c, _, _ = _short_training(make_tagger, tiny_corpora, seed=5, iterations=5)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.encoder.lstm.weight_ih_l0, c.encoder.lstm.weight_ih_l0)


def _one_step(model, tasks, reduction, alpha, beta, learner_cls=MetaLearner, lam=0.5):
    config = MetaConfig(alpha=alpha, beta=beta, lam=lam, loss_reduction=reduction)
    learner = learner_cls(model, config, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=alpha),
                          grad_clip=None)
    return learner, learner.step(tasks)


def test_sum_reduction_equals_the_mean_at_k_times_the_rates(make_tagger, tiny_corpora):
    # Every set has K = 3 sentences, so summing L^lab and L^cls over them multiplies every
    # gradient by K: without clipping or weight decay, plain SGD at (α, β) on the sum is
    # SGD at (Kα, Kβ) on the mean; eq. 2's weights are the same; the logged losses are K×.
    tasks, k = _tasks(tiny_corpora, k=3), 3
    summed, mean = make_tagger(), make_tagger()
    learner, log_sum = _one_step(summed, tasks, "sum", 0.01, 0.02)
    _, log_mean = _one_step(mean, tasks, "mean", 0.01 * k, 0.02 * k)
    for g in ("theta", "phi", "omega"):
        assert log_sum["gamma"][g] == pytest.approx(log_mean["gamma"][g], rel=1e-4)
    for (name, p), q in zip(summed.named_parameters(), mean.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)
    # the log's losses are on the sum's scale (the first task: the same adapted weights)
    batch = summed.task_batch(tasks[0].support, tasks[0].query, tasks[0].domain)
    lab_sum, cls_sum = learner.losses(dict(learner.params), batch, batch.support, batch.query)
    lab_mean, cls_mean = learner.losses(dict(learner.params), batch, batch.support, batch.query, reduction="mean")
    torch.testing.assert_close(lab_sum, k * lab_mean)
    torch.testing.assert_close(cls_sum, k * cls_mean)


def test_meta_validation_is_the_mean_under_either_reduction(make_tagger, tiny_corpora):
    val, k = _tasks(tiny_corpora, k=3, seed=9), 3
    model = make_tagger()
    summed = MetaLearner(model, MetaConfig(beta=0.02, loss_reduction="sum"), torch.optim.SGD(model.parameters(), lr=0.1))
    mean = MetaLearner(model, MetaConfig(beta=0.02 * k), torch.optim.SGD(model.parameters(), lr=0.1))
    # the same inner step (β on the sum = Kβ on the mean), then the query's *mean* L^lab
    assert summed.validation_loss(val) == pytest.approx(mean.validation_loss(val), rel=1e-4)


def test_transfer_sum_reduction_sums_over_each_tasks_sentences(make_tagger, tiny_corpora):
    tasks = _tasks(tiny_corpora, k=3)  # support ∪ query: 6 sentences per task
    summed, mean = make_tagger(), make_tagger()
    _, log_sum = _one_step(summed, tasks, "sum", 0.01, 0.01, TransferLearner, lam=0.0)
    _, log_mean = _one_step(mean, tasks, "mean", 0.06, 0.06, TransferLearner, lam=0.0)
    assert log_sum["lab"] == pytest.approx([6 * v for v in log_mean["lab"]], rel=1e-5)
    for (name, p), q in zip(summed.named_parameters(), mean.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)


def test_an_unknown_loss_reduction_is_a_clear_error():
    with pytest.raises(ValueError, match="loss_reduction must be mean or sum"):
        MetaConfig(loss_reduction="max")


def test_implicit_gradient_with_a_domain_loss_uses_the_hessian_of_their_sum():
    """With L^cls = ½ c ||w − b||² too, the inner loss is L^lab + L^cls, whose Hessian is
    A + cI: g = (I + (A + cI)/reg)⁻¹ (A (θ_i − a) + c (θ_i − b))."""
    torch.manual_seed(1)
    m = torch.randn(3, 3, dtype=torch.float64)
    hessian, eye = m @ m.T + torch.eye(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    centre, other, start = (torch.randn(3, dtype=torch.float64) for _ in range(3))
    beta, reg, c, steps = 0.05, 2.0, 1.5, 2
    model = _Quadratic(hessian, centre, start, c, other)
    config = MetaConfig(beta=beta, adaptation_steps=steps, gradient="implicit", implicit_reg=reg, cg_steps=3)
    batch = types.SimpleNamespace(support=slice(0, 1), query=slice(1, 2), domain="toy")
    result = MetaLearner(model, config, torch.optim.SGD(model.parameters(), lr=0.1)).task_result(batch)
    w = start.clone()
    for _ in range(steps):
        w = w - beta * (hessian @ (w - centre) + c * (w - other) + reg * (w - start))
    outer = hessian @ (w - centre) + c * (w - other)
    expected = torch.linalg.solve(eye + (hessian + c * eye) / reg, outer)
    torch.testing.assert_close(result.grads["encoder.w"], expected)


def test_conjugate_gradient_stops_when_solved_early():
    a = torch.diag(torch.tensor([2.0, 2.0], dtype=torch.float64))  # one distinct eigenvalue: solved in 1 step
    b = torch.tensor([4.0, -2.0], dtype=torch.float64)
    x = conjugate_gradient(lambda v: [a @ v[0]], [b], steps=10)[0]
    torch.testing.assert_close(x, torch.tensor([2.0, -1.0], dtype=torch.float64))


def test_meta_validation_loss_is_the_mean_query_loss_over_the_tasks(make_tagger, tiny_corpora):
    model = make_tagger()
    val = _tasks(tiny_corpora, k=3, seed=11)
    beta = 0.05
    learner = MetaLearner(model, MetaConfig(beta=beta, lam=0.5), torch.optim.SGD(model.parameters(), lr=0.1))
    expected = []
    for task in val:
        hand = copy.deepcopy(model).eval()
        lab, _, _ = _hand_task(hand, task, beta, 0.5, 1, outer="query")
        expected.append(lab)
    assert learner.validation_loss(val) == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    assert learner.validation_loss(val[:1]) == pytest.approx(expected[0], rel=1e-5)
    assert learner.validation_loss([]) == 0.0


def test_the_default_clip_norm_is_the_appendixs_five(make_tagger, tiny_corpora):
    """Summed losses over K = 6 make the meta-gradient's norm well above 6, so the clip
    norm decides the update: the default equals an explicit 5 and differs from 6."""
    tasks = _tasks(tiny_corpora, k=6)
    finals = []
    for clip in ({}, {"grad_clip": 5.0}, {"grad_clip": 6.0}):
        model = make_tagger()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
        learner = MetaLearner(model, MetaConfig(loss_reduction="sum", lam=2.0), opt, **clip)
        first = learner.task_result(model.task_batch(tasks[0].support, tasks[0].query, tasks[0].domain))
        assert sum(g.pow(2).sum() for g in first.grads.values()) ** 0.5 > 6.0
        learner.step(tasks)
        finals.append(model.encoder.lstm.weight_ih_l0.detach().clone())
    assert torch.equal(finals[0], finals[1]) and not torch.allclose(finals[0], finals[2])
