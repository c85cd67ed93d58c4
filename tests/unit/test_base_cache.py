"""The base model's cached evaluation half: keyed by every input, read back exactly, never trusted when damaged."""

from __future__ import annotations

import pytest

from iris_recipes.evaluate import base_cache
from iris_recipes.evaluate.forgetting import Reply

PARTS = {
    "base": "smollm2-abc123",
    "template": "{{ messages }}",
    "conversations": [[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]],
    "jobs": [([1, 2, 3], 64, None), ([1, 2, 3], 64, 0)],
    "n_ctx": 512,
    "threads": 2,
    "slots": 16,
    "sampling": {"temperature": 0.7},
}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IRIS_CACHE_DIR", str(tmp_path))


def test_every_input_is_in_the_key():
    k = base_cache.key(**PARTS)
    assert k == base_cache.key(**dict(reversed(PARTS.items())))  # order of the parts does not matter
    changed = {
        "base": "smollm2-def456",
        "template": "{{ other }}",
        "conversations": [],
        "jobs": [([1, 2, 3], 65, None)],
        "n_ctx": 1024,
        "threads": 1,
        "slots": 8,
        "sampling": {"temperature": 0.8},
    }
    for name, value in changed.items():
        assert base_cache.key(**{**PARTS, name: value}) != k, name


def test_round_trip_and_damaged_entries():
    k = base_cache.key(**PARTS)
    assert base_cache.load(k) is None
    replies = [Reply("Four.", [40, 41], True), Reply("…", [7] * 64, False)]
    assert base_cache.store(k, {"val_loss": 1.25, "perplexity": 3.49}, replies) is None
    loss, back = base_cache.load(k)
    assert loss == {"val_loss": 1.25, "perplexity": 3.49} and back == replies
    path = next(p for p in base_cache.cache_dir().rglob("*.json"))
    for damaged in ("", "{", '{"loss": {}}', '{"loss": {}, "replies": [{"text": 1}]}', "[]"):
        path.write_text(damaged)
        assert base_cache.load(k) is None, damaged


def test_a_cache_that_cannot_be_written_is_reported_not_raised(tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv("IRIS_CACHE_DIR", str(blocked))
    why = base_cache.store(base_cache.key(**PARTS), {"val_loss": 1.0}, [Reply("ok", [1], True)])
    assert why is not None and str(blocked) in why
    assert base_cache.load(base_cache.key(**PARTS)) is None
