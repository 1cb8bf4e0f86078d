"""Workspace rules: names, flow scripts, users."""

from __future__ import annotations

import pytest

from flowlink.errors import NotFoundError, PermissionDeniedError, ValidationError
from flowlink.workspace.workspace import Workspace, check_flow_source, check_workspace_name


@pytest.mark.parametrize("name", ["a", "abc-1", "0ws", "a" * 63])
def test_valid_workspace_names(name):
    assert check_workspace_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "A", "a_b", "a" * 64, "a b", "ä", "a/b", "a\n"])
def test_invalid_workspace_names_state_the_rule(name):
    with pytest.raises(ValidationError, match="lowercase letters, digits"):
        check_workspace_name(name)


def test_flow_source_syntax_error_names_the_line():
    with pytest.raises(ValidationError, match="line 3"):
        check_flow_source("def handler(system, this):\n    pass\n  x = 1\n", "f.py")


def test_flow_source_null_bytes_refused():
    with pytest.raises(ValidationError, match="Nothing was saved"):
        check_flow_source("def handler(s, t):\n    pass\n\0", "f.py")


def test_flow_source_nested_handler_does_not_count():
    with pytest.raises(ValidationError, match="does not define"):
        check_flow_source("class X:\n    def handler(self, system, this):\n        pass\n")


@pytest.mark.parametrize("name", ["", " lead", "trail ", "a\tb", "x" * 201])
def test_bad_resource_names(tmp_path, name):
    ws = Workspace.init(tmp_path / "ws", "a", admin="root")
    with pytest.raises(ValidationError, match="not a valid flow name"):
        ws.add_flow(name, "def handler(system, this):\n    pass\n")
    assert ws.list_flows() == []
    ws.close()


def test_roles(tmp_path):
    ws = Workspace.init(tmp_path / "ws", "a", admin="root")
    ws.add_user("bob", "user")
    assert ws.role_of("bob") == "user"
    bob = Workspace.open(tmp_path / "ws", acting_user="bob")
    assert not bob.is_admin
    with pytest.raises(PermissionDeniedError, match="Only an organization admin"):
        bob.add_user("eve", "organization_admin")
    with pytest.raises(ValidationError, match="not a role"):
        ws.add_user("eve", "root")
    with pytest.raises(PermissionDeniedError, match="last organization admin"):
        ws.add_user("root", "user")
    assert ws.role_of("root") == "organization_admin"
    with pytest.raises(NotFoundError):
        ws.remove_user("nobody")
    bob.close()
    ws.close()
