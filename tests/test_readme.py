"""The README's shell commands run as written, in bash and in zsh (whose default ``nomatch`` option turns an
unquoted ``'digits:test[:40]'`` into "no matches found"), except an explicit list of expensive ones.

Each shell gets its own empty folder holding ``.venv``, a link to the Python environment running the tests,
so ``.venv/bin/privis`` is the installed console script. Both shells run at the same time (each command
is a fresh process that imports torch, seconds each), and each runs without its start-up files
(``bash --norc``, ``zsh -f``): the shells' default options, not the tester's.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: README commands the suite does not run, by pattern, and why. Every other command in a ```bash block runs.
EXPENSIVE: dict[str, str] = {
    r"^bash scripts/": "set-up: installs system and Python packages (minutes; network)",
    r"\bprivis (evaluate|experiment|attack|bench|train|train-generator|demo)\b": "trains models: a minute to "
    "16 minutes each (the suite covers these commands on small data in tests/cli/)",
    r"\bprivis serve\b": "serves until stopped (tests/cli/test_cli_serve.py starts and stops one)",
    r"\bprivis client\b": "needs a running server and a trained generator",
    r"\bprivis export\b": "needs the generator trained above (the suite exports one in tests/cli/)",
}
#: Shells the README's commands must run in, as a user starts them, minus their start-up files.
SHELLS = {"bash": ["bash", "--noprofile", "--norc", "-e"], "zsh": ["zsh", "-f", "-e"]}


def bash_commands(text: str) -> list[str]:
    """The commands of every ```bash block in ``text``: one per line (``\\`` continuations joined), blank
    and comment-only lines dropped, trailing comments kept (both shells read them)."""
    commands: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        joined = block.replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return commands


def skipped_by(command: str) -> str | None:
    """The :data:`EXPENSIVE` pattern ``command`` matches, or None when the suite runs it."""
    return next((pattern for pattern in EXPENSIVE if re.search(pattern, command)), None)


def unquoted_patterns(command: str) -> list[str]:
    """Characters a shell would expand as a pattern (``[``, ``*``, ``?``) outside quotes in ``command``,
    before its trailing comment."""
    found, quote = [], ""
    for i, char in enumerate(command):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            break
        elif char in "[*?":
            found.append(char)
    return found


def test_every_readme_command_runs_or_is_listed_as_expensive():
    commands = bash_commands(README.read_text(encoding="utf-8"))
    run = [c for c in commands if skipped_by(c) is None]
    assert len(run) >= 5, run
    for pattern in EXPENSIVE:  # no stale entry: each pattern still skips something
        assert any(re.search(pattern, c) for c in commands), pattern


@pytest.mark.parametrize("doc", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))])
def test_dataset_specs_and_globs_are_quoted_in_shell_blocks(doc):
    for command in bash_commands((ROOT / doc).read_text(encoding="utf-8")):
        assert not unquoted_patterns(command), f"{doc}: quote the pattern characters in: {command}"


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (scripts/setup.sh installs it)")
def test_readme_commands_run_as_written_in_bash_and_zsh(tmp_path):
    commands = [c for c in bash_commands(README.read_text(encoding="utf-8")) if skipped_by(c) is None]
    # each command announced on stderr first, so a failure names it
    script = "".join(f"printf '%s\\n' {shlex.quote('+ ' + c)} >&2\n{c}\n" for c in commands)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PRIVIS_NO_PROGRESS": "1"}
    procs = {}
    for shell, argv in SHELLS.items():
        folder = tmp_path / shell
        (folder / "state").mkdir(parents=True)
        (folder / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
        (folder / "readme.sh").write_text(script, encoding="utf-8")
        procs[shell] = subprocess.Popen([*argv, "readme.sh"], cwd=folder, text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env={**env, "PRIVIS_STATE_DIR": str(folder / "state")})
    for shell, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{shell}: exit {proc.returncode}\n{err[-2000:]}"
        assert "Traceback" not in err and "no matches found" not in err, f"{shell}: {err[-2000:]}"
        folder = tmp_path / shell
        assert len(list((folder / "restored").rglob("*.png"))) == 40, shell
        assert (folder / "pixelated" / "manifest.json").is_file() and "veil" in out, shell
