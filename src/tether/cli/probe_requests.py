"""How a probe is put to each front door: ``/v1/authorize`` as is, and the Claude Code
hook as the tool call an agent would make for it (``aws s3 rb``, ``rm -rf``, ``Write``)."""

from __future__ import annotations

import shlex
from typing import Any

__all__ = ["hook_tool_call"]


def _kebab(operation: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in operation).lstrip("-")


def _aws(action: str, resource: str) -> str | None:
    service, _, operation = action.partition(":")
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return None
    target = parts[5]
    if service == "s3":
        url = f"s3://{target}"
        if operation == "DeleteBucket":
            return f"aws s3 rb {shlex.quote(url)}"
        if operation == "DeleteObject":
            return f"aws s3 rm {shlex.quote(url)}"
        if operation == "GetObject":
            return f"aws s3 cp {shlex.quote(url)} ./tether-probe"
        bucket, _, key = target.partition("/")
        key_option = f" --key {shlex.quote(key)}" if key else ""
        return f"aws s3api {_kebab(operation)} --bucket {shlex.quote(bucket)}{key_option}"
    kind, _, value = target.partition("/")
    if not value:
        return None
    return f"aws {service} {_kebab(operation)} --{kind}-name {shlex.quote(value)}".replace(
        "--instance-name", "--instance-ids"
    )


def _sql(action: str, resource: str) -> str | None:
    scheme, _, rest = resource.partition("://")
    host, _, path = rest.partition("/")
    database, _, table = path.partition("/")
    client = {"postgres": "psql -h {h} -d {d} -c {sql}", "mysql": "mysql -h {h} -D {d} -e {sql}"}
    if scheme not in client:
        return None
    statements = {
        "db:DropDatabase": f"DROP DATABASE {database}",
        "db:DropTable": f"DROP TABLE {table}",
        "db:Truncate": f"TRUNCATE {table}",
        "db:Delete": f"DELETE FROM {table}",
    }
    sql = statements.get(action)
    if sql is None:
        return None
    return client[scheme].format(h=shlex.quote(host), d=shlex.quote(database), sql=shlex.quote(sql))


def hook_tool_call(action: str, resource: str) -> tuple[str, dict[str, Any]] | None:
    """The (tool_name, tool_input) that asks for ``action`` on ``resource``; None when no
    Claude Code tool call maps to it."""
    if action == "file:Write" and resource.startswith("/"):
        return "Write", {"file_path": resource, "content": "tether policy probe"}
    if action == "file:Read" and resource.startswith("/"):
        return "Read", {"file_path": resource}
    if action == "file:Delete" and resource.startswith("/"):
        return "Bash", {"command": f"rm -rf {shlex.quote(resource)}"}
    command = None
    if resource.startswith("arn:aws:"):
        command = _aws(action, resource)
    elif action.startswith("db:"):
        command = _sql(action, resource)
    return ("Bash", {"command": command}) if command else None
