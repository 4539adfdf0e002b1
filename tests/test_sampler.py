"""Task generation (paper §3.2): disjoint support/query, the NE-only sampler, errors."""

from __future__ import annotations

import pytest

from hgda_core.sampler import TaskSampler


@pytest.fixture
def sources(tiny_corpora):
    return {d: tiny_corpora[d] for d in ("Disease", "Gene", "Species")}


def test_support_and_query_never_overlap(sources):
    sampler = TaskSampler(sources, "train", 10, seed=0)
    for _ in range(200):
        task = sampler.sample()
        assert len(task.support) == len(task.query) == 10
        assert not set(task.support_refs) & set(task.query_refs)
        assert len(set(task.support_refs)) == 10


@pytest.mark.parametrize("ne_only", ["support", "both"])
def test_ne_only_sampler_never_yields_entity_free_sentences(sources, ne_only):
    sampler = TaskSampler(sources, "train", 8, ne_only, seed=1)
    saw_entity_free_query = False
    for _ in range(200):
        task = sampler.sample()
        assert all(s.has_entity for s in task.support)
        if ne_only == "both":
            assert all(s.has_entity for s in task.query)
        saw_entity_free_query |= not all(s.has_entity for s in task.query)
        assert not set(task.support_refs) & set(task.query_refs)
    assert saw_entity_free_query == (ne_only == "support")


def test_plain_sampler_does_draw_entity_free_sentences(sources):
    sampler = TaskSampler(sources, "train", 8, seed=1)
    assert any(not s.has_entity for _ in range(50) for s in sampler.sample().support)


def test_same_seed_same_tasks_and_refs_point_at_the_sentences(sources):
    a = TaskSampler(sources, "train", 5, seed=3).fixed_tasks(6)
    b = TaskSampler(sources, "train", 5, seed=3).fixed_tasks(6)
    assert [t.support_refs for t in a] == [t.support_refs for t in b]
    assert [t.domain for t in a] == ["Disease", "Gene", "Species"] * 2
    by_name = {c.name: c for cs in sources.values() for c in cs}
    for task in a:
        for (name, i), sentence in zip(task.support_refs, task.support):
            assert by_name[name]["train"][i] is sentence


def test_too_small_domain_is_a_clear_error(sources):
    with pytest.raises(ValueError, match=r"domain Disease \(train\) has 60 sentences.*2K = 80"):
        TaskSampler(sources, "train", 40)
    with pytest.raises(ValueError, match="ne_only"):
        TaskSampler(sources, "train", 2, "query")  # type: ignore[arg-type]
