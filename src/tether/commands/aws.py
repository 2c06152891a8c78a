"""The AWS CLI: ``aws SERVICE OPERATION …`` as ``service:Operation`` on an ARN."""

from __future__ import annotations

from tether.commands.model import CommandAction

__all__ = ["aws_actions"]

_SERVICE_PREFIX = {"s3api": "s3", "s3control": "s3"}
_GLOBAL_WITH_VALUE = {"--region", "--profile", "--output", "--endpoint-url", "--query", "--color",
                      "--cli-read-timeout", "--cli-connect-timeout", "--ca-bundle"}  # fmt: skip


def _pascal(kebab: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in kebab.split("-"))


def _s3_arn(url: str) -> str:
    return "arn:aws:s3:::" + url.removeprefix("s3://").rstrip("/")


def _options(args: list[str]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if eq:
                options[name] = value
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                options[name] = args[i + 1]
                i += 1
            else:
                options[name] = ""
        else:
            positional.append(arg)
        i += 1
    return positional, options


def _s3_high_level(operation: str, args: list[str]) -> list[CommandAction]:
    positional, options = _options(args)
    urls = [a for a in positional if a.startswith("s3://")]
    recursive = "--recursive" in options
    star = "*" if recursive else ""
    if operation == "rb" and urls:
        return [CommandAction("s3:DeleteBucket", _s3_arn(urls[0]))]
    if operation == "mb" and urls:
        return [CommandAction("s3:CreateBucket", _s3_arn(urls[0]))]
    if operation == "rm" and urls:
        return [CommandAction("s3:DeleteObject", _s3_arn(urls[0]) + star)]
    if operation == "ls":
        return [CommandAction("s3:ListBucket", _s3_arn(urls[0]) if urls else "arn:aws:s3:::*")]
    if operation in ("cp", "mv", "sync") and len(positional) >= 2:
        source, target = positional[0], positional[1]
        found = []
        if source.startswith("s3://"):
            found.append(CommandAction("s3:GetObject", _s3_arn(source) + star))
            if operation == "mv":
                found.append(CommandAction("s3:DeleteObject", _s3_arn(source) + star))
        if target.startswith("s3://"):
            found.append(CommandAction("s3:PutObject", _s3_arn(target) + star))
        if operation == "sync" and "--delete" in options and target.startswith("s3://"):
            found.append(CommandAction("s3:DeleteObject", _s3_arn(target) + "*"))
        return found
    return []


def _resource(service: str, options: dict[str, str]) -> str:
    for value in options.values():
        if value.startswith("arn:"):
            return value
    if service == "s3" and "--bucket" in options:
        key = options.get("--key", "")
        return _s3_arn(options["--bucket"] + (f"/{key}" if key else ""))
    for name, value in options.items():
        for suffix in ("-name", "-id", "-ids", "-identifier", "-url"):
            if name.endswith(suffix) and value:
                kind = name.removeprefix("--").removesuffix(suffix) or "resource"
                return f"arn:aws:{service}:::{kind}/{value}"
    return f"arn:aws:{service}:::*"


def aws_actions(argv: list[str]) -> list[CommandAction] | None:
    """None when the invocation is not one tether can read (e.g. ``aws help``)."""
    i = 1  # an index, not pop(0): linear however many global flags come first
    while i < len(argv) and argv[i].startswith("--"):
        flag = argv[i]
        i += 1
        if flag in _GLOBAL_WITH_VALUE and i < len(argv) and "=" not in flag:
            i += 1
    args = argv[i:]
    if len(args) < 2:
        return None
    service, operation, rest = args[0], args[1], args[2:]
    if service == "s3":
        return _s3_high_level(operation, rest) or None
    prefix = _SERVICE_PREFIX.get(service, service)
    _, options = _options(rest)
    return [CommandAction(f"{prefix}:{_pascal(operation)}", _resource(prefix, options))]
