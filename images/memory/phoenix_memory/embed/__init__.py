"""Text embedders: a local sentence-transformers model or an OpenAI-compatible API."""
