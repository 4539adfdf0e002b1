"""The fast kernels compute the same functions as the plain ones they replace (issue 12):
the padded bidirectional LSTM against packed sequences, the CRF loss and Viterbi paths
against pytorch-crf, and fine-tuning and meta-training end to end."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torchcrf import CRF

from hgda_core.adapt import fine_tune
from hgda_core.meta import MetaConfig, MetaLearner
from hgda_core.models import build_tagger
from hgda_core.models.crf import crf_log_likelihood, viterbi_decode
from hgda_core.models.encoder import bidirectional_lstm, length_groups, reversal_index
from hgda_core.sampler import TaskSampler
from tests.conftest import TINY

LENGTHS = [[4, 2, 3], [9, 1, 1, 7, 2, 9, 3, 5, 8, 1, 6, 2], [1], [5, 5, 5]]


def test_reversal_index_reverses_within_each_length_and_is_its_own_inverse():
    index = reversal_index(torch.tensor([3, 1, 4]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    assert index.gather(1, index).tolist() == [list(range(4))] * 3


def test_length_groups_cover_every_row_once_longest_first():
    lengths = [9, 1, 1, 7, 2, 9, 3, 5, 8, 1, 6, 2, 40, 41]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    flat = [lengths[i] for g in groups for i in g]
    assert flat == sorted(lengths, reverse=True) and len(groups) > 1
    assert length_groups([5, 5, 5]) == [[0, 1, 2]]


@pytest.mark.parametrize("lengths", LENGTHS)
def test_padded_bidirectional_lstm_equals_packed(lengths):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 3, batch_first=True, bidirectional=True)
    x = torch.randn(len(lengths), max(lengths), 5, requires_grad=True)
    lens = torch.tensor(lengths)
    out, (h_n, _) = lstm(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    fast, last = bidirectional_lstm(lstm, x, lens)
    torch.testing.assert_close(fast, out)
    torch.testing.assert_close(last, torch.cat([h_n[0], h_n[1]], -1))
    weights = torch.randn_like(out)
    inputs = [x, *lstm.parameters()]
    expected = torch.autograd.grad((out * weights).sum() + h_n.sum(), inputs)
    got = torch.autograd.grad((fast * weights).sum() + last.sum(), inputs)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_padded_lstm_uses_functional_call_weights():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True)
    x, lens = torch.randn(3, 5, 4), torch.tensor([5, 2, 4])
    fast = {n: p.detach() * 0.5 for n, p in lstm.named_parameters()}
    halved = copy.deepcopy(lstm)
    with torch.no_grad():
        for p in halved.parameters():
            p.mul_(0.5)

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x):
            return bidirectional_lstm(self.lstm, x, lens)[0]

    got = functional_call(Wrap(), {f"lstm.{n}": v for n, v in fast.items()}, (x,))
    torch.testing.assert_close(got, bidirectional_lstm(halved, x, lens)[0])


def _crf_batch(seed, batch, length, tags=3):
    torch.manual_seed(seed)
    crf = CRF(tags, batch_first=True)
    for p in crf.parameters():
        torch.nn.init.normal_(p)
    emissions = torch.randn(batch, length, tags, requires_grad=True)
    lengths = torch.randint(1, length + 1, (batch,))
    lengths[0] = length
    mask = torch.arange(length)[None] < lengths[:, None]
    return crf, emissions, torch.randint(0, tags, (batch, length)) * mask, mask


@pytest.mark.parametrize("seed, batch, length, tags", [(0, 7, 11, 3), (1, 1, 1, 3), (2, 30, 25, 5), (3, 4, 2, 7)])
def test_crf_log_likelihood_equals_pytorch_crf_with_gradients(seed, batch, length, tags):
    crf, emissions, tag_ids, mask = _crf_batch(seed, batch, length, tags)
    expected = crf(emissions, tag_ids, mask=mask, reduction="none")
    got = crf_log_likelihood(crf, emissions, tag_ids, mask)
    torch.testing.assert_close(got, expected)
    inputs = [emissions, *crf.parameters()]
    grads = [torch.autograd.grad(v.sum(), inputs, allow_unused=True) for v in (got, expected)]
    for a, b, x in zip(*grads, inputs):  # a length-1 batch leaves the transitions unused
        zero = torch.zeros_like(x)
        torch.testing.assert_close(zero if a is None else a, zero if b is None else b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed, batch, length, tags", [(0, 7, 11, 3), (1, 1, 1, 3), (2, 64, 30, 5), (3, 4, 2, 7)])
def test_viterbi_decode_equals_pytorch_crf(seed, batch, length, tags):
    crf, emissions, _, mask = _crf_batch(seed, batch, length, tags)
    assert viterbi_decode(crf, emissions, mask) == crf.decode(emissions, mask=mask)


def _dropout_tagger(tiny_vectors, seed=0):
    torch.manual_seed(seed)
    config = dataclasses.replace(TINY, dropout=0.3)
    return build_tagger(tiny_vectors, config, ["Gene", "Species"], ["Gene", "Species"])


def test_fine_tuning_fast_and_reference_kernels_give_the_same_model(tiny_vectors, tiny_corpora):
    """Fine-tuning with dropout on: adapted weights equal to 1e-4 relative, identical tags."""
    corpus = tiny_corpora["Disease"][0]
    sentences = corpus["train"][:10]
    base = _dropout_tagger(tiny_vectors)
    fast = fine_tune(base, "Disease", sentences, steps=25, lr=0.2, seed=5)
    reference = fine_tune(copy.deepcopy(base).set_kernels("reference"), "Disease", sentences, steps=25, lr=0.2, seed=5)
    assert reference.kernels == "reference" and reference.decoders["Disease"].impl == "torchcrf"
    assert fast.decoders["Disease"].impl == "fast"
    for (name, a), b in zip(fast.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    test = corpus["test"]
    reference.set_kernels("reference")
    assert fast.predict(test, "Disease") == reference.predict(test, "Disease")
    assert fast.predict(fast.prepare(test, 7), "Disease") == fast.predict(test, "Disease")


@pytest.mark.parametrize("gradient", ["first_order", "implicit"])
def test_meta_training_fast_and_reference_kernels_agree_over_iterations(tiny_vectors, tiny_corpora, gradient):
    source = {d: tiny_corpora[d] for d in ("Gene", "Species")}
    sampler = TaskSampler(source, "train", 4, seed=3)
    batches = [[sampler.sample() for _ in range(3)] for _ in range(4)]
    finals, logs = [], []
    for kernels in ("fast", "reference"):
        model = _dropout_tagger(tiny_vectors, seed=2).set_kernels(kernels)
        config = MetaConfig(alpha=0.1, beta=0.1, adaptation_steps=2, gradient=gradient, cg_steps=2)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
        learner = MetaLearner(model, config, optimizer)
        torch.manual_seed(11)  # the same dropout masks for both
        logs.append([learner.step(tasks) for tasks in batches])
        finals.append(model.trainable_state())
    for name in finals[0]:
        torch.testing.assert_close(finals[0][name], finals[1][name], rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(*logs):
        assert a["lab"] == pytest.approx(b["lab"], rel=1e-4)
        assert a["gamma"]["theta"] == pytest.approx(b["gamma"]["theta"], rel=1e-4)
