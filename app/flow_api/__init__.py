"""The module flow scripts import.

    import flow_api

    def handler(system: flow_api.System, this: flow_api.Execution):
        child = this.flow('collect_logs', since='1h')
        return this.success(child.get('output_value')['summary'])

Every call travels to the workspace engine that runs this worker process.
"""

from __future__ import annotations

import base64
import time
from typing import Any

__all__ = [
    "DependencyFailedError",
    "Execution",
    "File",
    "Flow",
    "FlowApiError",
    "InvalidInputError",
    "PermissionDenied",
    "ResourceNotFoundError",
    "Setting",
    "System",
    "TimeoutExceededError",
]


class FlowApiError(Exception):
    """Base class of every error flow_api raises."""


class DependencyFailedError(FlowApiError):
    """A child execution ended other than in success."""


class ResourceNotFoundError(FlowApiError):
    pass


class PermissionDenied(FlowApiError):
    pass


class TimeoutExceededError(FlowApiError):
    pass


class InvalidInputError(FlowApiError):
    pass


ERRORS: dict[str, type[FlowApiError]] = {
    cls.__name__: cls
    for cls in (
        FlowApiError,
        DependencyFailedError,
        ResourceNotFoundError,
        PermissionDenied,
        TimeoutExceededError,
        InvalidInputError,
    )
}


class _Bridge:
    """Set by the worker process: ``call(method, **kwargs)`` returns the engine's answer."""

    def call(self, method: str, **kwargs: Any) -> Any:  # pragma: no cover - replaced
        raise FlowApiError("flow_api works only inside a flow run by a Flowlink workspace")


_bridge: _Bridge = _Bridge()


def _call(method: str, **kwargs: Any) -> Any:
    return _bridge.call(method, **kwargs)


class ExecutionEnded(BaseException):  # noqa: N818 - control flow, not an error
    """Unwinds the handler after this.success()/error()/end(); not meant to be caught."""

    def __init__(self, status: str, message: str | None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


_FIELDS = {
    "input_value": "inputs",
    "inputs": "inputs",
    "output_value": "outputs",
    "outputs": "outputs",
    "status": "status",
    "message": "message",
    "name": "name",
    "flow": "flow",
    "id": "id",
    "parent_id": "parent_id",
    "workspace": "workspace",
    "created_at": "created_at",
    "started_at": "started_at",
    "ended_at": "ended_at",
}


class Execution:
    """An execution: ``this`` in a handler, or a child it started."""

    def __init__(self, execution_id: int, *, is_this: bool = False) -> None:
        self.id = int(execution_id)
        self._is_this = is_this

    def __repr__(self) -> str:
        return f"<flow_api.Execution {self.id}>"

    def get(self, key: str = "output_value", default: Any = None) -> Any:
        if key not in _FIELDS:
            raise InvalidInputError(f"unknown execution field {key!r}; use one of {', '.join(_FIELDS)}")
        value = _call("get", id=self.id, field=_FIELDS[key])
        return default if value is None else value

    def save(self, **fields: Any) -> None:
        allowed = {"output_value", "message", "name"}
        unknown = set(fields) - allowed
        if unknown:
            raise InvalidInputError(f"save() takes {', '.join(sorted(allowed))}, not {', '.join(sorted(unknown))}")
        if "output_value" in fields and not isinstance(fields["output_value"], dict):
            raise InvalidInputError("output_value must be a dict")
        _call("save", id=self.id, fields=fields)

    def set_output(self, key: str, value: Any) -> None:
        _call("set_output", id=self.id, key=str(key), value=value)

    def log(self, *args: Any, **fields: Any) -> None:
        parts = [str(a) for a in args]
        parts.extend(f"{k}={v!r}" for k, v in fields.items())
        _call("log", id=self.id, text=" ".join(parts))

    def cancel(self) -> None:
        _call("cancel", id=self.id)

    def flow(
        self,
        flow_name: str,
        *,
        remote_workspace_name: str | None = None,
        wait: bool = True,
        inputs: dict[str, Any] | None = None,
        name: str | None = None,
        max_runtime: float | None = None,
        **more_inputs: Any,
    ) -> Execution:
        """Start flow ``flow_name`` as a child; by default wait for it and raise if it failed."""
        all_inputs = dict(inputs or {})
        all_inputs.update(more_inputs)
        child_id = _call(
            "flow",
            parent=self.id,
            flow=flow_name,
            inputs=all_inputs,
            name=name,
            remote=remote_workspace_name,
            max_runtime=max_runtime,
        )
        child = Execution(child_id)
        if wait:
            self.wait_for(child)
        return child

    def wait_for(self, *children: Execution, timeout: float | None = None) -> list[Execution]:
        """Wait until every child has ended; raise DependencyFailedError if any did not succeed."""
        ids = [c.id for c in children]
        if not ids:
            return []
        results = _call("wait", id=self.id, ids=ids, timeout=timeout)
        failed = [r for r in results if r["status"] != "ENDED_SUCCESS"]
        if failed:
            first = failed[0]
            raise DependencyFailedError(
                f"child execution {first['id']} ({first['flow']}) ended {first['status']}: "
                f"{first['message']}"
            )
        return list(children)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def end(self, status: str, message: str | None = None) -> None:
        if not self._is_this:
            raise InvalidInputError("only the running execution can end itself; use cancel()")
        _call("end", id=self.id, status=status, message=message)
        raise ExecutionEnded(status, message)

    def success(self, message: str | None = None) -> None:
        self.end("ENDED_SUCCESS", message)

    def error(self, message: str | None = None) -> None:
        self.end("ENDED_ERROR", message)


class Setting:
    def __init__(self, name: str) -> None:
        self.name = name

    def exists(self) -> bool:
        return bool(_call("setting_exists", name=self.name))

    def get(self, key: str = "value") -> Any:
        if key != "value":
            raise InvalidInputError("a setting has only 'value'")
        return _call("setting_get", name=self.name)

    def save(self, value: Any) -> None:
        _call("setting_save", name=self.name, value=value)


class File:
    def __init__(self, name: str) -> None:
        self.name = name

    def exists(self) -> bool:
        return bool(_call("file_exists", name=self.name))

    def get_bytes_content(self) -> bytes:
        return base64.b64decode(_call("file_get", name=self.name))

    def get_text_content(self, encoding: str = "utf-8") -> str:
        return self.get_bytes_content().decode(encoding)

    def save_bytes_content(self, content: bytes) -> None:
        _call("file_save", name=self.name, content=base64.b64encode(bytes(content)).decode())

    def save_text_content(self, text: str, encoding: str = "utf-8") -> None:
        self.save_bytes_content(text.encode(encoding))


class Flow:
    def __init__(self, name: str) -> None:
        self.name = name

    def exists(self) -> bool:
        return bool(_call("flow_exists", name=self.name))

    def get(self, key: str = "script") -> Any:
        if key not in ("script", "name"):
            raise InvalidInputError("a flow has 'script' and 'name'")
        return self.name if key == "name" else _call("flow_source", name=self.name)


class System:
    """Access to the workspace: settings, files, flows, executions."""

    def setting(self, name: str) -> Setting:
        return Setting(name)

    def file(self, name: str) -> File:
        return File(name)

    def flow(self, name: str) -> Flow:
        return Flow(name)

    def execution(self, execution_id: int) -> Execution:
        if not _call("execution_exists", id=int(execution_id)):
            raise ResourceNotFoundError(f"there is no execution {execution_id}")
        return Execution(int(execution_id))

    def get_env_name(self) -> str:
        return str(_call("env_name"))
