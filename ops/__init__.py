"""gpt-oss-ops: one spec for a gpt-oss deployment, turned into infrastructure, a Ray Serve LLM app and operations."""

__version__ = "0.1.0"
