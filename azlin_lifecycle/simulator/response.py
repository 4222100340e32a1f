"""One answer of the stand-in ARM: status, body and headers (ARM's JSON and error shapes)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import armjson

Json = Any


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Json, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, json.dumps(value).encode("utf-8"),
                   {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    @classmethod
    def error(cls, status: int, code: str, message: str,
              headers: Mapping[str, str] | None = None, target: str | None = None) -> Response:
        return cls.json(status, armjson.error_body(code, message, target), headers)
