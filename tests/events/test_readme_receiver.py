"""The README's minimal push receiver, run as it stands against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Organisations
from tests.events.conftest import GRANT, register, scim_client, with_permission
from tests.live import free_port

README = Path(__file__).parents[2] / "README.md"


def _example() -> str:
    section = README.read_text().split("## Receiving permission changes", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    return code


async def test_the_readme_receiver_verifies_and_takes_a_permission_change(
    engine: AsyncEngine, server: str, organisations: Organisations, tmp_path: Path
) -> None:
    script = tmp_path / "receiver.py"
    script.write_text(_example())
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(script)],
        env={**os.environ, "SCIM_SERVER": server, "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    printed = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.strip())
            printed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        await register(engine, "ansok-om-statlig-ersattning", f"http://127.0.0.1:{port}/")
        with scim_client(server, organisations.stockholm.token) as client:
            created = client.post("/Users", json=with_permission("readme", GRANT)).json()
        assert printed.wait(30), "the receiver printed nothing"
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    hsa_id = created["urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User"]["hsaId"]
    assert lines[0] == f"prov:create:notice {hsa_id}"
