"""The Ray Serve LLM application for gpt-oss (import path `app.serve_gpt_oss:app`)."""
