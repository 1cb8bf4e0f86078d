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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak_only: runs only in `make soak` (FLOWLINK_SOAK=1)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak-only tests are deselected, not skipped, outside `make soak`: a CI run never
    reports a skip it silently accepts."""
    if os.environ.get("FLOWLINK_SOAK") == "1":
        return
    kept = [item for item in items if item.get_closest_marker("soak_only") is None]
    dropped = [item for item in items if item.get_closest_marker("soak_only") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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
