"""The administrators' browser client: static files (no build step) that the server serves
at ``/admin/`` and that talk to it only through the SCIM API, ``/catalogue`` and ``/session``."""

from pathlib import Path

DIRECTORY = Path(__file__).parent
