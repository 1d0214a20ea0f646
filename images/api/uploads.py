"""Image file uploads (`PUT …/{id}/file`, application/octet-stream), shared by the tenants'
and the operators' image APIs. The body is handed to the service as a stream: nothing here
reads it into memory (the body size limit middleware lets these paths through: see
settings.API_BODY_LIMIT_EXEMPT_PATHS)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.serializers import Serializer

from iaas.errors import InvalidRequest
from images import files as image_files

F = TypeVar("F", bound=Callable[..., Any])

UPLOAD_MEDIA_TYPE = "application/octet-stream"


class StreamParser(BaseParser):
    """Accepts application/octet-stream and hands over the request stream, unread."""

    media_type = UPLOAD_MEDIA_TYPE

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        return stream


def upload_stream(request: Request) -> tuple[image_files.Readable, int | None]:
    """The request body as a stream, and its length when the client declared one."""
    media_type = (request.content_type or "").split(";")[0].strip().lower()
    if media_type != UPLOAD_MEDIA_TYPE:
        raise UnsupportedMediaType(media_type or "none")
    raw_length = request.META.get("CONTENT_LENGTH")
    if raw_length:
        try:
            length = int(raw_length)
        except ValueError:
            raise InvalidRequest(
                "Content-Length is not a number.", code="invalid_content_length"
            ) from None
        body = request.data  # StreamParser: the request itself, a file-like object
        if length <= 0 or not hasattr(body, "read"):
            raise InvalidRequest("The upload is empty.", code="empty_upload")
        return body, length
    # A chunked body has no Content-Length; a server that decodes it (gunicorn) marks the
    # stream as ending with the body (PEP 3333's wsgi.input_terminated).
    if request.META.get("wsgi.input_terminated"):
        return request.META["wsgi.input"], None
    # Neither a Content-Length nor a chunked body: HTTP says there is no body.
    raise InvalidRequest("The upload is empty.", code="empty_upload")


def upload_schema(answer: type[Serializer[Any]]) -> Callable[[F], F]:
    """The OpenAPI description of an upload action that answers with `answer`."""
    return extend_schema(
        request={UPLOAD_MEDIA_TYPE: OpenApiTypes.BINARY},
        responses={200: answer},
        description=(
            "Upload the image's file (the raw bytes, Content-Type application/octet-stream). "
            "The image must be queued; it is saving during the upload, then active, or error "
            "with a message when the file is refused (not of the declared format, or "
            "referencing a backing file or an external data file). Larger than the limit: 413 "
            "image_too_large, and the image stays queued."
        ),
    )
