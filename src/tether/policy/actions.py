"""Action names (``service:Operation``) and the groups a policy can name instead of
listing every operation: ``Action::"delete"``, ``"write"``, ``"read"``, ``"model"`` and
one per service, ``Action::"s3:*"``.

Classification is by the operation's verb, so an operation tether has never seen is
still a deletion when it says so (``DeleteFoo``, ``TerminateInstances``, ``DropTable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "DELETE",
    "GROUPS",
    "KNOWN_ACTIONS",
    "MODEL",
    "READ",
    "WRITE",
    "ActionInfo",
    "classify",
    "is_group",
    "service_group",
]

DELETE, WRITE, READ, MODEL = "delete", "write", "read", "model"
GROUPS = (DELETE, WRITE, READ, MODEL)

_DELETE_VERBS = (
    "delete", "remove", "terminate", "destroy", "drop", "purge", "truncate",
    "deregister", "erase", "wipe", "empty", "rb", "rm", "forcepush",
)  # fmt: skip
_WRITE_VERBS = (
    "put", "create", "update", "write", "edit", "modify", "attach", "detach", "set", "add",
    "post", "tag", "untag", "start", "stop", "reboot", "run", "invoke", "exec", "send",
    "publish", "copy", "move", "upload", "restore", "enable", "disable", "apply", "push",
    "replace", "import", "insert", "grant", "revoke", "alter", "rename", "mkdir",
)  # fmt: skip
_READ_VERBS = (
    "get", "list", "describe", "read", "head", "search", "fetch", "query", "select",
    "show", "lookup", "scan", "download", "view", "count", "glob", "grep",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ActionInfo:
    name: str
    service: str
    operation: str
    groups: tuple[str, ...]

    @property
    def is_deletion(self) -> bool:
        return DELETE in self.groups


def service_group(service: str) -> str:
    return f"{service}:*"


def is_group(name: str) -> bool:
    return name in GROUPS or name.endswith(":*")


def _verb_group(service: str, operation: str) -> str | None:
    if service == MODEL:
        return MODEL
    op = operation.lower().replace("-", "").replace("_", "")
    for verbs, group in ((_DELETE_VERBS, DELETE), (_READ_VERBS, READ), (_WRITE_VERBS, WRITE)):
        if op.startswith(verbs):
            return group
    return None


@lru_cache(maxsize=4096)
def classify(name: str) -> ActionInfo:
    """The groups ``name`` belongs to: its verb's group (if any) and its service's."""
    service, _, operation = name.partition(":")
    groups = [service_group(service)]
    verb = _verb_group(service, operation)
    if verb is not None:
        groups.insert(0, verb)
    return ActionInfo(name, service, operation, tuple(groups))


KNOWN_ACTIONS = (
    "model:messages", "model:count_tokens",
    "file:Read", "file:Write", "file:Delete",
    "tool:Bash", "web:Fetch", "web:Search",
    "db:Query", "db:DropTable", "db:DropDatabase", "db:Truncate", "db:Delete",
    "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:CreateBucket",
    "s3:DeleteBucket",
    "iam:GetRole", "iam:CreateRole", "iam:DeleteRole", "iam:DeleteUser",
    "ec2:DescribeInstances", "ec2:RunInstances", "ec2:TerminateInstances",
    "dynamodb:DeleteTable", "lambda:DeleteFunction", "rds:DeleteDBInstance",
)  # fmt: skip
"""Always in the schema, so a policy naming only groups still validates."""
