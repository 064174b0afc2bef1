"""Text embedders: all-MiniLM-L6-v2 on ONNX Runtime, or an OpenAI-compatible API."""
