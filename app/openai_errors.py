"""Errors in the shape the OpenAI API (and so the OpenAI SDKs) use: {"error": {message, type, param, code}}.

Ray Serve LLM's ingress answers an unknown model with FastAPI's `{"detail": ...}`, which the SDKs cannot
turn into a `NotFoundError` with a message; the handler here gives it the OpenAI body instead.
"""

from typing import Any


class ModelNotFound(Exception):
    def __init__(self, model: Any, available: list[str]):
        self.model = model
        self.available = available
        super().__init__(f"The model `{model}` does not exist on this endpoint. "
                         f"Served models: {', '.join(available) or 'none'}.")


def openai_error(status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: Any = None) -> dict[str, Any]:
    """{"status": HTTP status, "body": OpenAI error body}."""
    return {"status": status,
            "body": {"error": {"message": message, "type": type_, "param": param,
                               "code": code if code is not None else status}}}


async def model_not_found_handler(_request, exc: ModelNotFound):
    from starlette.responses import JSONResponse

    err = openai_error(404, str(exc), param="model", code="model_not_found")
    return JSONResponse(err["body"], status_code=404)
