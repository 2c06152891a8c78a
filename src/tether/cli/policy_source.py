"""The policy in force, as the CLI fetches it: a project without one has empty text."""

from __future__ import annotations

from tether.cli.client import AdminClient, CliError

__all__ = ["current_policy"]


def current_policy(admin: AdminClient, project: str) -> tuple[str, int]:
    """(source, version); ("", 0) when the project has no policy yet."""
    try:
        out = admin.call("GET", f"/projects/{project}/policy")
    except CliError as exc:
        if "[not_found" in exc.message and "no policy" in exc.message:
            return "", 0
        raise
    return str(out["source"]), int(out["version"])
