"""Embeddings from an OpenAI-compatible API: ``POST <EMBEDDING_URL>/embeddings``.

Request ``{"model": ..., "input": [texts]}``; response ``{"data": [{"index": i,
"embedding": [...]}, ...]}``. The vector size is learnt from one probe call at
start-up, then checked on every response.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from phoenix_common.errors import DependencyUnavailable

PROBE_TEXT = "dimension probe"


def parse_response(body: Any, expected: int) -> list[list[float]]:
    """The vectors of an /embeddings response in input order; ValueError if malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("response has no 'data' list")
    items = sorted(body["data"], key=lambda item: int(item.get("index", 0)))
    vectors = [[float(x) for x in item["embedding"]] for item in items]
    if len(vectors) != expected:
        raise ValueError(f"got {len(vectors)} embeddings for {expected} inputs")
    return vectors


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint over httpx."""

    def __init__(self, client: httpx.AsyncClient, model: str, dim: int) -> None:
        self._client = client
        self._model = model
        self._dim = dim

    @classmethod
    async def connect(
        cls, base_url: str, *, model: str, api_key: str | None, timeout_s: float
    ) -> OpenAIEmbedder:
        """Open the client and probe the vector size; DependencyUnavailable if it cannot."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout_s
        )
        embedder = cls(client, model, dim=0)
        try:
            probe = await embedder._post([PROBE_TEXT])
        except BaseException:
            await client.aclose()
            raise
        embedder._dim = len(probe[0])
        return embedder

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def description(self) -> str:
        return f"OpenAI-compatible {self._model} at {self._client.base_url}"

    async def _post(self, texts: list[str]) -> list[list[float]]:
        try:
            response = await self._client.post(
                "embeddings", json={"model": self._model, "input": texts}
            )
            response.raise_for_status()
            vectors = parse_response(response.json(), len(texts))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            raise DependencyUnavailable(
                f"embedding service at {self._client.base_url} failed: {type(err).__name__}"
            ) from err
        if self._dim and any(len(vector) != self._dim for vector in vectors):
            raise DependencyUnavailable(
                f"embedding service returned vectors not of size {self._dim}"
            )
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._post(list(texts)) if texts else []

    async def close(self) -> None:
        await self._client.aclose()
