"""The shell command parser: known commands map to actions on resolved resources; anything
it cannot read comes back not understood — for any input, never an empty answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.commands.parse import actions_of

CWD = "/home/dev/app"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("aws s3 rb s3://prod-x --force", [("s3:DeleteBucket", "arn:aws:s3:::prod-x")]),
        ("aws s3 rm s3://b/logs --recursive", [("s3:DeleteObject", "arn:aws:s3:::b/logs*")]),
        ("aws s3 mv s3://a/k s3://b/k", [
            ("s3:GetObject", "arn:aws:s3:::a/k"),
            ("s3:DeleteObject", "arn:aws:s3:::a/k"),
            ("s3:PutObject", "arn:aws:s3:::b/k"),
        ]),
        ("aws --profile prod s3api delete-bucket --bucket x",
         [("s3:DeleteBucket", "arn:aws:s3:::x")]),
        ("aws iam delete-role --role-name deployer",
         [("iam:DeleteRole", "arn:aws:iam:::role/deployer")]),
        ("aws lambda delete-function --function-name f",
         [("lambda:DeleteFunction", "arn:aws:lambda:::function/f")]),
        ("aws sns delete-topic --topic-arn arn:aws:sns:eu:1:t",
         [("sns:DeleteTopic", "arn:aws:sns:eu:1:t")]),
        ("rm -rf build ../shared /tmp/x", [
            ("file:Delete", f"{CWD}/build"),
            ("file:Delete", "/home/dev/shared"),
            ("file:Delete", "/tmp/x"),
        ]),
        ("sudo -u root rm /etc/hosts", [("file:Delete", "/etc/hosts")]),
        ("psql -h db1 -d prod -c 'DROP TABLE users'", [("db:DropTable", "postgres://db1/prod/users")]),
        ("psql postgres://db2/app -c 'TRUNCATE audit; DELETE FROM t'", [
            ("db:Truncate", "postgres://db2/app/audit"),
            ("db:Delete", "postgres://db2/app/t"),
        ]),
        ("psql -c 'DROP DATABASE app'", [("db:DropDatabase", "postgres://localhost/app")]),
        ("sqlite3 data.db 'DROP TABLE x'", [("db:DropTable", "sqlite://data.db/x")]),
        ("git push --force origin main", [("git:ForcePush", CWD)]),
        ("git status", [("git:Read", CWD)]),
        ("find . -name '*.tmp' -delete", [("file:Delete", CWD)]),
        ("echo hi > notes.txt", [("file:Write", f"{CWD}/notes.txt"), ("file:Read", CWD)]),
        ("env -u HOME nice -n 5 rm x", [("file:Delete", f"{CWD}/x")]),
        ("grep -r TODO src | wc -l", [("file:Read", f"{CWD}/src"), ("file:Read", CWD)]),
        ("mv a.txt b.txt", [("file:Delete", f"{CWD}/a.txt"), ("file:Write", f"{CWD}/b.txt")]),
    ],
)  # fmt: skip
def test_known_commands(command: str, expected: list[tuple[str, str]]) -> None:
    found = actions_of(command, CWD)
    assert all(a.understood for a in found)
    assert [(a.action, a.resource) for a in found] == expected


@pytest.mark.parametrize(
    "command",
    [
        "python3 deploy.py",
        "echo $(cat ~/.aws/credentials)",
        "ls `pwd`",
        "cat <<EOF\nDROP TABLE x\nEOF",
        "(cd /; rm -rf x)",
        "diff <(ls a) <(ls b)",
        'unbalanced "quote',
        "psql",
        "psql -c 'VACUUM'",
        "aws",
        "find . -exec rm {} ;",
        "",
    ],
)
def test_unreadable_commands_are_not_understood(command: str) -> None:
    found = actions_of(command, CWD)
    assert any(not a.understood for a in found), found
    assert all(a.action == "tool:Bash" for a in found if not a.understood)


def test_a_chain_is_not_understood_if_any_part_is_not() -> None:
    found = actions_of("ls && ./unknown-tool --wipe", CWD)
    assert [a.understood for a in found] == [True, False]


@given(st.text(max_size=200))
def test_any_text_gets_at_least_one_action(command: str) -> None:
    found = actions_of(command, CWD)
    assert found
    for action in found:
        assert action.action and action.resource
        if "$(" in command or "`" in command:
            assert not action.understood
