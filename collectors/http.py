"""Request plumbing shared by the ingest endpoints: body size, encoding, media type, errors."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from collectors import otlp
from collectors.problems import FieldError
from meterhouse.service.context import problem
from meterhouse.service.limits import BodyTooLargeError, read_limited

_CHUNK = 64 * 1024


@dataclass
class ClientError(Exception):
    """A request refused with a 4xx (or 503): rendered as problem+json, or OTLP Status."""

    status: int
    title: str
    detail: str
    reason: str  # collectors.metrics.REQUEST_REASONS
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def problem(self) -> Response:
        extra: dict[str, Any] = {}
        if self.errors:
            extra["errors"] = [error.as_json() for error in self.errors]
        response = problem(self.status, self.title, self.detail, **extra)
        response.headers.update(self.headers)
        return response

    def otlp_status(self, media_type: str) -> Response:
        code = {
            401: otlp.UNAUTHENTICATED,
            403: otlp.PERMISSION_DENIED,
            413: otlp.RESOURCE_EXHAUSTED,
            429: otlp.RESOURCE_EXHAUSTED,
            503: otlp.UNAVAILABLE,
        }.get(self.status, otlp.INVALID_ARGUMENT)
        answer_type = media_type if media_type in otlp.MEDIA_TYPES else otlp.PROTOBUF
        return Response(
            otlp.encode_status(code, f"{self.title}: {self.detail}", answer_type),
            status_code=self.status,
            media_type=answer_type,
            headers=self.headers,
        )


def too_large(limit: int) -> ClientError:
    return ClientError(
        413,
        "Payload Too Large",
        f"the body is larger than {limit} bytes (MH_INGEST_MAX_BODY_BYTES); send smaller batches",
        "too_large",
    )


def media_type(request: Request, accepted: tuple[str, ...]) -> str:
    """The request's media type without parameters, if it is one of ``accepted``."""
    declared = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if declared not in accepted:
        raise ClientError(
            415,
            "Unsupported Media Type",
            f"Content-Type {declared or '(none)'!r} is not accepted here; use one of: "
            + ", ".join(accepted),
            "unsupported_media_type",
        )
    return declared


async def read_body(request: Request, limit: int) -> bytes:
    """The body, decompressed (gzip or deflate), refused with 413 once it passes ``limit``."""
    try:
        body = await read_limited(request, limit)
    except BodyTooLargeError as exc:
        raise too_large(limit) from exc
    except ClientDisconnect as exc:
        # Nobody is left to read the answer; say so in the logs' terms, not as a crash.
        raise ClientError(400, "Bad Request", "the client went away mid-body", "malformed") from exc
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise ClientError(
            415,
            "Unsupported Media Type",
            f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none",
            "unsupported_media_type",
        )
    return _inflate(body, limit, gzip=encoding == "gzip")


def _inflate(body: bytes, limit: int, *, gzip: bool) -> bytes:
    """Decompress, refusing past ``limit`` bytes. A gzip body may be several members one
    after the other (RFC 1952, as `cat a.gz b.gz` makes): every member is read, none is
    silently dropped."""
    out = bytearray()
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=31 if gzip else 15)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise ClientError(
                400,
                "Bad Request",
                f"the body is not valid {'gzip' if gzip else 'deflate'}: {exc}",
                "malformed",
            ) from exc
        if len(out) > limit or inflater.unconsumed_tail:
            raise too_large(limit)
        if not inflater.eof:
            raise ClientError(400, "Bad Request", "the compressed body is truncated", "malformed")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)
        if not gzip:
            raise ClientError(
                400, "Bad Request", "bytes follow the end of the deflate stream", "malformed"
            )


def client_ip(request: Request) -> str:
    """The peer address; proxies' X-Forwarded-For is not trusted (it is the sender's word)."""
    return request.client.host if request.client else "unknown"
