"""Run scim2-tester's ``check_server`` against a URL."""

from __future__ import annotations

from typing import Any

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

PASSING = {Status.SUCCESS}


def run(url: str, *, token: str | None = None, **httpx_options: Any) -> list[CheckResult]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx2.Client(base_url=url.rstrip("/") + "/", headers=headers, **httpx_options) as http:
        client = SyncSCIMClient(http)
        results: list[CheckResult] = check_server(client)
    return results
