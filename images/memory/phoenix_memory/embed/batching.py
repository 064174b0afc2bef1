"""Coalesce concurrent embed calls into batches for the model.

While one batch is being embedded, new calls queue; the next batch takes
everything queued (up to ``max_batch`` texts). A lone call goes straight
through, so batching adds no latency when there is no concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from phoenix_memory.embed.base import Embedder
from phoenix_memory.metrics import EMBEDDING_BATCH_TEXTS

_Request = tuple[list[str], "asyncio.Future[list[list[float]]]"]


class BatchingEmbedder:
    def __init__(self, inner: Embedder, *, max_batch: int = 64) -> None:
        self._inner = inner
        self._max_batch = max_batch
        self._pending: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def description(self) -> str:
        return self._inner.description

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        self._pending.append((list(texts), future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    def _take_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max_batch):
            item = self._pending.pop(0)
            batch.append(item)
            size += len(item[0])
        return batch

    async def _drain(self) -> None:
        while self._pending:
            batch = self._take_batch()
            live = [(texts, future) for texts, future in batch if not future.cancelled()]
            if not live:
                continue
            EMBEDDING_BATCH_TEXTS.observe(sum(len(texts) for texts, _ in live))
            try:
                vectors = await self._inner.embed([text for texts, _ in live for text in texts])
            except Exception as err:
                for _, future in live:
                    if not future.done():
                        future.set_exception(err)
                continue
            start = 0
            for texts, future in live:
                if not future.done():
                    future.set_result(vectors[start : start + len(texts)])
                start += len(texts)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        await self._inner.close()
