"""HTTP control of the SMSC simulator (twisted.web).

- ``POST /mo`` with JSON ``{"from", "to", "text"[, "encoding", "method",
  "data_coding", "system_id"]}`` injects a mobile-originated message: 202
  ``{"queued": n}``; bad JSON or a missing/invalid field: 400 ``{"error": ...}``.
- ``GET /stats``: the counters (binds, submits, throttled, receipts, MOs, per bind).
- ``GET /received?limit=N&destination=D``: the kept received messages, oldest
  first, short_message and TLV values as hex.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from typing_extensions import override

from smsgw.codec.segment import ConcatMethod
from smsgw.codec.text import Encoding
from smsgw.smsc.factory import SmscFactory

_ENCODINGS = ("auto", *get_args(Encoding))
_METHODS = get_args(ConcatMethod)
DEFAULT_RECEIVED_LIMIT = 100


class BadRequest(ValueError):
    """A control request that cannot be served (answered with 400)."""


def _json(request: Request, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body).encode() + b"\n"


def parse_mo(body: bytes) -> dict[str, Any]:
    """Validate a ``POST /mo`` body; return keyword arguments for inject_mo.

    Raises BadRequest naming the first problem.
    """
    try:
        doc = json.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise BadRequest(f"body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object")
    args: dict[str, Any] = {}
    for key, name in (("from", "source"), ("to", "destination"), ("text", "text")):
        value = doc.get(key)
        if not isinstance(value, str) or (key != "text" and not value):
            raise BadRequest(f"{key}: required string")
        args[name] = value
    encoding = doc.get("encoding", "auto")
    if encoding not in _ENCODINGS:
        raise BadRequest(f"encoding: one of {', '.join(_ENCODINGS)}")
    method = doc.get("method", "udh8")
    if method not in _METHODS:
        raise BadRequest(f"method: one of {', '.join(_METHODS)}")
    data_coding = doc.get("data_coding")
    if data_coding is not None and (
        not isinstance(data_coding, int) or not 0 <= data_coding <= 255
    ):
        raise BadRequest("data_coding: an integer 0..255")
    system_id = doc.get("system_id")
    if system_id is not None and not isinstance(system_id, str):
        raise BadRequest("system_id: a string")
    unknown = (
        set(doc)
        - {"from", "to", "text", "encoding", "method"}
        - {
            "data_coding",
            "system_id",
        }
    )
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    args.update(
        encoding=encoding, method=method, data_coding=data_coding, system_id=system_id
    )
    return args


class _Resource(Resource):
    """A resource whose unknown children are a plain 404."""

    @override
    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return notFound()


class MoResource(_Resource):
    """``POST /mo``: inject a mobile-originated message."""

    def __init__(self, smsc: SmscFactory) -> None:
        super().__init__()
        self.smsc = smsc

    def render_POST(self, request: Request) -> bytes:  # noqa: N802 (twisted.web's name)
        """Queue the MO; return 202 {"queued": n} or 400 {"error": ...}."""
        assert request.content is not None
        try:
            args = parse_mo(request.content.read())
            queued = self.smsc.inject_mo(**args)
        except ValueError as e:  # BadRequest, UnencodableError, TooManyPartsError
            return _json(request, 400, {"error": str(e)})
        return _json(request, 202, {"queued": queued})


class StatsResource(_Resource):
    """``GET /stats``: the simulator's counters."""

    def __init__(self, smsc: SmscFactory) -> None:
        super().__init__()
        self.smsc = smsc

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 (twisted.web's name)
        """Return the counters as JSON."""
        return _json(request, 200, self.smsc.stats())


class ReceivedResource(_Resource):
    """``GET /received?limit=N&destination=D``: what the simulator received."""

    def __init__(self, smsc: SmscFactory) -> None:
        super().__init__()
        self.smsc = smsc

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 (twisted.web's name)
        """Return {"total": n, "received": [...]} (oldest first), or 400."""
        args = request.args or {}
        limit = DEFAULT_RECEIVED_LIMIT
        if b"limit" in args:
            raw = args[b"limit"][0]
            if not raw.isdigit():
                return _json(request, 400, {"error": "limit: a non-negative integer"})
            limit = int(raw)
        destination = None
        if b"destination" in args:
            destination = args[b"destination"][0].decode("utf-8", "replace")
        items = self.smsc.received_list(limit, destination)
        return _json(
            request,
            200,
            {"total": self.smsc.submits, "received": [r.as_json() for r in items]},
        )


def control_resource(smsc: SmscFactory) -> Resource:
    """Return the root resource with /mo, /stats and /received."""
    root = _Resource()
    root.putChild(b"mo", MoResource(smsc))
    root.putChild(b"stats", StatsResource(smsc))
    root.putChild(b"received", ReceivedResource(smsc))
    return root


def make_control_site(smsc: SmscFactory, clock: IReactorTime) -> Site:
    """Return the twisted.web Site serving the control API for ``smsc``."""
    return Site(control_resource(smsc), reactor=clock)
