"""The ONNX embedder against the PyTorch path it replaced, on a fixed corpus."""

from __future__ import annotations

import math

import pytest

from phoenix_memory.embed.local import GRAPH, MAX_RUN_CELLS, LocalEmbedder, bundled_model_path, runs
from scripts import minilm_onnx

from .torch_reference import TorchEmbedder

LONG = " ".join(f"token{i} lorem ipsum dolor sit amet" for i in range(120))  # > 256 pieces
CORPUS = (
    "hello qdrant",
    "The cat fell asleep on the warm windowsill in the sun.",
    "A kitten is napping by the sunny window.",
    "Kubernetes rolled out the new deployment to three replicas.",
    "who logged in from a strange IP?",
    "Über café naïve résumé — déjà vu",
    "东京的天气怎么样\uff1f 今日は晴れです。",
    "🚀 launch at 09:30 UTC, rollback plan #42 ✅",
    "   leading and trailing   whitespace   ",
    "x",
    "SELECT * FROM users WHERE id = 7; DROP TABLE users; --",
    "threat.intel: APT29 phishing wave targeting finance (CVE-2024-3094)",
    LONG,
    LONG[:700],
)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
def torch_vectors() -> list[list[float]]:
    return TorchEmbedder().encode(CORPUS)


async def test_onnx_vectors_match_pytorch_on_the_corpus(
    local_embedder: LocalEmbedder, torch_vectors: list[list[float]]
) -> None:
    """Batched together (mixed lengths, so padding and runs are exercised) and one by one."""
    batched = await local_embedder.embed(CORPUS)
    singles = [(await local_embedder.embed([text]))[0] for text in CORPUS]
    for text, reference, together, alone in zip(
        CORPUS, torch_vectors, batched, singles, strict=True
    ):
        assert len(together) == 384
        assert cosine(together, reference) >= 0.9999, text[:40]
        assert cosine(alone, reference) >= 0.9999, text[:40]
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
