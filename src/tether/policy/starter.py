"""Starter policies: a first Cedar policy a user can apply as is, so a new project is
useful at once instead of refusing everything (policies deny what they do not permit)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BUILD_AND_TEST_COMMANDS",
    "StarterPolicy",
    "cedar_string",
    "claude_code_starter",
    "like_literal",
]

BUILD_AND_TEST_COMMANDS = (
    "make", "pytest", "python -m pytest", "uv run pytest", "tox", "npm test", "npm run test",
    "npm run build", "npm run lint", "yarn test", "pnpm test", "cargo build", "cargo test",
    "cargo check", "go build", "go test", "go vet", "mvn test", "gradle test", "ruff",
    "mypy", "tsc",
)  # fmt: skip
"""Programs tether's command parser does not know (``tool:Bash`` on ``command:TEXT``)."""

SHELL_SYNTAX = ("$", "`", ";", "&", "|", ">", "<", "\\n")
"""A command line tether could not read holds its whole text: one with any of these could
run something else than its first word says, so no prefix rule may match it."""


@dataclass(frozen=True, slots=True)
class StarterPolicy:
    source: str
    summary: list[str]


def cedar_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def like_literal(text: str) -> str:
    """``text`` inside a Cedar ``like`` pattern, where ``*`` is the only wildcard."""
    return cedar_string(text).replace("*", "\\*")


def claude_code_starter(root: str, project: str | None) -> StarterPolicy:
    """Reads and writes inside ``root``, build and test commands, model calls; deletions
    inside ``root`` ask a human; everything else stays denied."""
    root = root.rstrip("/") or "/"
    principal = f'principal in Project::"{cedar_string(project)}"' if project else "principal"
    exact, under = cedar_string(root), like_literal(root.rstrip("/")) + "/*"
    in_tree = f'resource.arn == "{exact}" || resource.arn like "{under}"'
    commands = "\n  || ".join(
        f'resource.arn == "command:{c}" || resource.arn like "command:{c} *"'
        for c in BUILD_AND_TEST_COMMANDS
    )
    plain = "\n  && ".join(f'!(resource.arn like "*{c}*")' for c in SHELL_SYNTAX)
    source = f"""\
// tether starter policy for Claude Code: {root}
// Everything not permitted below is denied.

@id("read-in-tree")
permit({principal}, action in Action::"read", resource)
when {{ {in_tree} }};

@id("write-in-tree")
permit(
  {principal},
  action in [Action::"file:Write", Action::"git:Add", Action::"git:Commit"],
  resource
)
when {{ {in_tree} }};

@id("delete-in-tree")
@ask("deleting inside the working tree")
permit({principal}, action == Action::"file:Delete", resource)
when {{ resource.arn like "{under}" }};

@id("build-and-test")
permit({principal}, action == Action::"tool:Bash", resource)
when {{
  ({commands})
  && {plain}
}};

@id("model-calls")
permit({principal}, action in Action::"model", resource);
"""
    summary = [
        f"reads (files, git status/diff/log) inside {root}",
        f"writes, git add and git commit inside {root}",
        f"deletions inside {root}: a human approves each (tether approvals list)",
        "commands: " + ", ".join(BUILD_AND_TEST_COMMANDS) + " (without pipes, ;, && or $(…))",
        "model calls",
        "everything else is denied: other paths, rm -rf /, git push, cloud and database calls",
    ]
    return StarterPolicy(source, summary)
