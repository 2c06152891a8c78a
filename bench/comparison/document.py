"""docs/benchmarks.md: the generated gateway section is replaced between its markers; the
rest of the file (its introduction, other sections such as the audit benchmark) is kept."""

from __future__ import annotations

from pathlib import Path

BEGIN = "<!-- BEGIN bench/compare.py: generated, re-run the command to update -->"
END = "<!-- END bench/compare.py -->"

INTRODUCTION = """\
# Benchmarks

What tether costs, measured on one machine with one command, side by side with the
upstream itself, a bare Python pass-through and LiteLLM. Reproduce (about 6 to 8 minutes;
`--quick` in about 2 and writes nothing unless `--out` is given):

```sh
uv run python bench/compare.py
```

It needs PostgreSQL at `127.0.0.1:5432` (user `postgres`, trust; `--pg-dsn` to change it,
`--skip tether-pg` without it) and installs `litellm[proxy]` once into
`~/.cache/tether-bench/litellm-venv` (`--skip litellm` to leave it out). Options:
`uv run python bench/compare.py --help`. Numbers from a shared or busy machine are noisy:
the load averages printed with each run say how quiet it was.

"""


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the markers in ``path`` (creating the file, or appending the
    markers, when they are not there yet)."""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}\n"
    text = path.read_text() if path.exists() else INTRODUCTION
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


PROFILE_BEGIN = "<!-- BEGIN bench/compare.py --profile: generated, re-run the command to update -->"
PROFILE_END = "<!-- END bench/compare.py --profile -->"


def write_profile_section(path: Path, section: str) -> None:
    """Put ``section`` between the profile's own markers (appended the first time)."""
    block = f"{PROFILE_BEGIN}\n{section.rstrip()}\n{PROFILE_END}\n"
    text = path.read_text() if path.exists() else INTRODUCTION
    if PROFILE_BEGIN in text and PROFILE_END in text:
        head, rest = text.split(PROFILE_BEGIN, 1)
        tail = rest.split(PROFILE_END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def write_marked(path: Path, section: str, begin: str, end: str) -> None:
    """Put ``section`` between ``begin`` and ``end`` in ``path`` (appended, with the
    markers, the first time): what ``bench/soak.py`` and ``bench/tails.py`` write."""
    block = f"{begin}\n{section.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
