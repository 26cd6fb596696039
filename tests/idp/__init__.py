"""Replays of what identity systems send, step by step, as their provisioning documentation
shows it: Microsoft Entra ID (``test_entra.py``) and Okta (``test_okta.py``)."""
