"""Shared fixtures.

FLOWLINK_STRICT=1 (set by .ci/run) turns every "the real component is missing"
skip into a failure, so CI can never pass by silently skipping real checks.
"""

from __future__ import annotations

import os

import pytest

STRICT = os.environ.get("FLOWLINK_STRICT") == "1"

# Any test folder may use Qt (the adversarial form tests do): offscreen unless a display is set.
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def require_real(available: bool, what: str) -> None:
    """Skip (locally) or fail (under FLOWLINK_STRICT=1) when a real component is missing."""
    if available:
        return
    if STRICT:
        pytest.fail(f"{what} is required under FLOWLINK_STRICT=1 but is not available")
    pytest.skip(f"{what} not available")


# Registered here so every test directory can ask for a real Secret Service; imported last
# because keyring_fixture itself uses require_real from this module.
from keyring_fixture import session_keyring  # noqa: E402, F401
from workspace_fixtures import engine, workspace  # noqa: E402, F401
