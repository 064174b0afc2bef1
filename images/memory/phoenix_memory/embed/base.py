"""The embedder interface: lists of texts in, one real vector per text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    @property
    def dim(self) -> int:
        """Length of every vector this embedder returns."""
        ...

    @property
    def description(self) -> str: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; raises DependencyUnavailable if it cannot."""
        ...

    async def close(self) -> None: ...
