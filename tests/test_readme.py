"""The README's provisioning example, run as it stands: create a user with permissions, then
change them with one PATCH."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.conftest import ESERVICES

README = Path(__file__).parent.parent / "README.md"
EXAMPLE = re.compile(
    r"```sh\ncurl -s -X (POST|PATCH) http://127\.0\.0\.1:8000/scim/v2(\S+) .*?-d '(.*?)'\n```", re.S
)


async def test_the_provisioning_example(client: httpx.AsyncClient) -> None:
    examples = EXAMPLE.findall(README.read_text())
    assert [method for method, _, _ in examples] == ["POST", "PATCH"]
    (_, create_path, create_body), (_, patch_path, patch_body) = examples
    created = await client.post(create_path, json=json.loads(create_body))
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    patched = await client.patch(patch_path.replace("$ID", user_id), json=json.loads(patch_body))
    assert patched.status_code == 200, patched.text
    assert [p["value"] for p in patched.json()[ESERVICES]["permissions"]] == [
        "ansok-om-statlig-ersattning:grundersattning",
        "se-och-andra-ansvar-for-ensamkommande:administrera-barn-utan-vardnadshavare",
    ]
