"""Progress bars: off under CI / PRIVIS_NO_PROGRESS / no TTY, forced on by PRIVIS_PROGRESS."""

from __future__ import annotations

import pytest

from privis import progress as prog


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PRIVIS_NO_PROGRESS", "PRIVIS_PROGRESS", "CI"):
        monkeypatch.delenv(var, raising=False)


def test_off_the_terminal_the_iterable_comes_back_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    items = [1, 2, 3]  # under capsys, stderr is not a TTY
    assert prog.progress(items) is items


def test_privis_progress_forces_line_output_into_a_log(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVIS_PROGRESS", "1")
    assert list(prog.progress(range(5), total=5, desc="work")) == [0, 1, 2, 3, 4]
    assert "work" in capsys.readouterr().err


def test_no_progress_wins_over_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVIS_PROGRESS", "1")
    monkeypatch.setenv("PRIVIS_NO_PROGRESS", "1")
    assert not prog.progress_enabled()


@pytest.mark.parametrize("forced", [False, True])
def test_without_a_stderr_there_are_no_bars_and_no_failure(monkeypatch: pytest.MonkeyPatch, forced: bool) -> None:
    """A process started with stderr closed (``2>&-``) has ``sys.stderr is None``."""
    if forced:
        monkeypatch.setenv("PRIVIS_PROGRESS", "1")
    monkeypatch.setattr("sys.stderr", None)
    items = [1, 2, 3]
    assert not prog.progress_enabled()
    assert prog.progress(items) is items
