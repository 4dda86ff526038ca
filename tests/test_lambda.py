"""The API on AWS Lambda: `moneta.lambda_handler.handler` invoked with API Gateway HTTP
API (payload 2.0) events, in a fresh interpreter as Lambda would."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_INVOKE = r"""
import json, sys, types
from moneta.lambda_handler import handler

context = types.SimpleNamespace(function_name="moneta", aws_request_id="req-1",
                                get_remaining_time_in_millis=lambda: 30000)
answers = []
for event in json.loads(sys.stdin.read()):
    answers.append(handler(event, context))
print(json.dumps(answers))
"""


def api_gateway_event(method: str, path: str, key: str, body: Any = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
            "host": "api.example.com",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "test",
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1795564800000,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def test_lambda_handler_serves_the_api(base_env: dict[str, str], admin_key: str) -> None:
    events = [
        api_gateway_event("GET", "/healthz", admin_key),
        api_gateway_event("POST", "/v1/ledgers", admin_key, {"name": "from-lambda"}),
        api_gateway_event("GET", "/v1/ledgers/00000000-0000-0000-0000-000000000000", admin_key),
        api_gateway_event("GET", "/v1/ledgers", "mk_" + "0" * 32 + "_nope"),
    ]
    done = subprocess.run(
        [sys.executable, "-c", _INVOKE],
        input=json.dumps(events),
        env={**base_env, "MONETA_LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    health, created, missing, refused = json.loads(done.stdout.strip().splitlines()[-1])
    assert health["statusCode"] == 200
    assert created["statusCode"] == 201, created
    assert json.loads(created["body"])["name"] == "from-lambda"
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["code"] == "not_found"
    assert refused["statusCode"] == 401
