"""A task definition as an operator writes it (YAML or JSON), validated with the line of
each mistake, so ``tether tasks create`` can say exactly what to fix."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tether.errors import TaskInvalid

__all__ = ["MAX_ITEMS", "TaskDefinition", "Verification", "parse_definition"]

MAX_ITEMS = 100_000
MAX_SOURCE_CHARS = 4_000_000


class Verification(BaseModel):
    """How a batch is checked: a command the agent runs, or a rule it applies; the agent
    reports the outcome with ``complete_batch``."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(None, min_length=1, max_length=2000)
    rule: str | None = Field(None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _one_at_least(self) -> Verification:
        if self.command is None and self.rule is None:
            raise ValueError("give a verification command or rule")
        return self


class TaskDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    goal: str = Field(min_length=1, max_length=20_000)
    constraints: list[str] = Field(default_factory=list, max_length=200)
    acceptance: list[str] = Field(default_factory=list, max_length=200)
    items: list[str | int | dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)
    batch_size: int | None = Field(None, ge=1, le=10_000)
    verification: Verification | None = None
    claim_minutes: int = Field(30, ge=1, le=24 * 60)
    """A claimed batch not completed within this long is handed out again."""

    @model_validator(mode="after")
    def _batches_need_size_and_check(self) -> TaskDefinition:
        if self.items and self.batch_size is None:
            raise ValueError("items need a batch_size (how many items one batch holds)")
        if self.items and self.verification is None:
            raise ValueError("items need a verification (command or rule) for each batch")
        return self

    @property
    def batch_count(self) -> int:
        if not self.items or not self.batch_size:
            return 0
        return -(-len(self.items) // self.batch_size)

    def batch_items(self, number: int) -> list[str | int | dict[str, Any]]:
        size = self.batch_size or 0
        return self.items[number * size : (number + 1) * size]

    def to_json(self) -> str:
        return orjson.dumps(self.model_dump(exclude_none=True)).decode()

    @classmethod
    def from_json(cls, text: str) -> TaskDefinition:
        return cls.model_validate_json(text)


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the value at ``loc`` (or of its nearest parent that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, _ in node.value if k.value == part), None)
            if match is None:
                return line
            line, node = (key or match).start_mark.line + 1, match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith(("str", "int", "dict"))) or "(top)"


def parse_definition(source: str) -> TaskDefinition:
    """Raises ``TaskInvalid`` whose ``details`` give each mistake's line and field."""
    if len(source) > MAX_SOURCE_CHARS:
        raise TaskInvalid(
            f"the task file is over {MAX_SOURCE_CHARS} characters", [{"message": "too large"}]
        )
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
        data = yaml.safe_load(source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "not YAML or JSON"
        where = f"line {line}: " if line else ""
        raise TaskInvalid(
            f"the task file does not parse: {where}{problem}",
            [{"line": line, "field": None, "message": problem}],
        ) from None
    except yaml.YAMLError as exc:
        raise TaskInvalid(f"the task file does not parse: {exc}", [{"message": str(exc)}]) from None
    if not isinstance(data, dict):
        raise TaskInvalid(
            "the task file must be a mapping with at least name and goal",
            [{"line": 1, "field": None, "message": "not a mapping"}],
        )
    try:
        return TaskDefinition.model_validate(data)
    except ValidationError as exc:
        details: list[dict[str, object]] = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            details.append(
                {"line": _line_of(node, loc), "field": _where(loc), "message": error["msg"]}
            )
        first = details[0]
        lines = "; ".join(f"line {d['line']}: {d['field']}: {d['message']}" for d in details[:10])
        raise TaskInvalid(
            f"the task file is not a valid task ({len(details)} problem"
            f"{'s' if len(details) != 1 else ''}): {lines or first['message']}",
            details,
        ) from None
