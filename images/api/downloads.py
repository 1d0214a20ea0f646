"""File downloads (`GET …/{id}/file`) of images and exports: the stored file streamed from
its store, never read into memory, with its length, a file name, and the SHA-256 recorded
when the file was written (computed on the way in), in two headers:

- `X-Content-SHA256`: the hex digest, as `sha256sum` prints it;
- `Repr-Digest: sha-256=:<base64>:` (RFC 9530), which HTTP tooling understands.

A client checks the bytes it received against them; the digest is the store's record, not
recomputed per download (that would read the whole file twice)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer

from iaas.api.schema import error_response
from iaas.errors import ConflictError

F = TypeVar("F", bound=Callable[..., Any])
DOWNLOAD_MEDIA_TYPE = "application/octet-stream"
SHA256_HEADER = "X-Content-SHA256"
DIGEST_HEADER = "Repr-Digest"


class BinaryRenderer(BaseRenderer):
    """Lets a download be asked for with `Accept: application/octet-stream`. The file itself
    is a FileResponse (never rendered); what is rendered here is an error, and errors are
    JSON whatever was asked (the project's one error shape)."""

    media_type = DOWNLOAD_MEDIA_TYPE
    format = "bin"
    charset = None

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data).encode() if data is not None else b""


DOWNLOAD_RENDERERS = [JSONRenderer, BinaryRenderer]


def repr_digest(sha256_hex: str) -> str:
    """RFC 9530's `Repr-Digest` value for a SHA-256 given in hex."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


def file_download(path: Path, *, filename: str, sha256_hex: str) -> FileResponse:
    """The file at `path`, streamed, as an attachment named `filename`, with its digest.
    Gone from the store (an erase or an operator's hand): 409 `file_missing`, not a 500."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it once sent
    except FileNotFoundError:
        raise ConflictError(
            "The file is missing from its store; tell the operator.", code="file_missing"
        ) from None
    response = FileResponse(
        handle, as_attachment=True, filename=filename, content_type=DOWNLOAD_MEDIA_TYPE
    )
    response[SHA256_HEADER] = sha256_hex
    response[DIGEST_HEADER] = repr_digest(sha256_hex)
    return response


def download_schema(what: str) -> Callable[[F], F]:
    """The OpenAPI description of a download action."""
    return extend_schema(
        request=None,
        responses={
            (200, DOWNLOAD_MEDIA_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY,
                description=f"The {what}'s file, streamed, as an attachment; "
                f"`{SHA256_HEADER}` (hex) and `{DIGEST_HEADER}` (RFC 9530) carry its SHA-256.",
            ),
            409: error_response(f"The {what} has no file to download now (its status says why)."),
        },
        description=f"Download the {what}'s file (application/octet-stream). Check the bytes "
        f"against `{SHA256_HEADER}`. 409 when the {what} has no file to download (its status "
        "says why).",
    )
