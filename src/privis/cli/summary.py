"""The short summary a command prints after producing figures: readable names with units, cautions, verdicts.

A :class:`~privis.results.Result` can hold hundreds of figures (the leaderboard: one per method, attack and
score). The terminal gets at most :data:`MAX_ROWS` of them, named in words with their unit
(the glossary the HTML report uses too, :data:`privis.report.glossary.GLOSSARY`); all of them go to ``--json``
/ ``--report``, and the summary says so. Below the figures:

- a ``warning:`` line for each of :func:`privis.report.glossary.cautions`: a quick run, few images (with the
  standard error of an accuracy), a model whose accuracy is near chance (it did not learn, and the figures say
  nothing about the method);
- for an attack, a ``verdict:`` line comparing what it recovered with what the attacker had without it: the
  protected image itself (|SSIM| to the original), guessing (membership AUC 0.5), or the attacker's own class
  means (model inversion). The attack "recovers structure" when it beats that baseline by more than
  :data:`BEAT_MARGIN`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from privis.report.glossary import GLOSSARY, cautions, fmt, label, term
from privis.results import Result

#: Most figure rows printed (the leaderboard prints one row per method instead).
MAX_ROWS = 16
#: Margin by which an attack must beat its baseline (|SSIM| or AUC) to count as a success.
BEAT_MARGIN = 0.05


def verdict(result: Result) -> str | None:
    """One line saying whether an attack (``result`` of ``privis attack``) beat what the attacker had
    without it, or None when ``result`` holds no attack scores.

    Examples:
        >>> verdict(Result("a", summary={"ssim_mean": 0.41, "ssim_protected": 0.05}))
        'recovered mean |SSIM| 0.4100 vs 0.0500 for the protected images themselves: the attack recovers structure'
        >>> verdict(Result("a", summary={"auc": 0.52}))
        'membership AUC 0.5200 vs 0.5 for guessing: the attack did not beat the baseline'
    """
    s = result.summary

    def judge(what: str, got: float, base: float, against: str) -> str:
        ok = got > base + BEAT_MARGIN
        return f"{what} {fmt(got)} vs {fmt(base) if base != 0.5 else '0.5'} for {against}: " + (
            "the attack recovers structure" if ok and "|SSIM|" in what else
            "the attack tells members from non-members" if ok else "the attack did not beat the baseline")

    if isinstance(s.get("ssim_mean"), float) and isinstance(s.get("ssim_protected"), float):
        line = judge("recovered mean |SSIM|", s["ssim_mean"], s["ssim_protected"], "the protected images themselves")
        if isinstance(s.get("ssim_aux_class_means"), float):
            line = judge("representatives' mean |SSIM|", s["ssim_mean"], s["ssim_aux_class_means"],
                         "the attacker's own class means")
        return line
    if isinstance(s.get("auc"), float):
        return judge("membership AUC", s["auc"], 0.5, "guessing")
    return None


#: A column of a per-method table: header, width (negative: left-aligned) and the cell of one row.
Column = tuple[str, int, Callable[[dict[str, Any]], str]]


def _leak(attack_key: str) -> Callable[[dict[str, Any]], str]:
    """The worst |SSIM| of a row with the attack that reached it (``attack_key`` names the attack)."""
    return lambda e: f"{fmt(e.get('leakage_ssim'))} ({e.get(attack_key) or '—'})"


def _figure(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda e: fmt(e.get(key))


def _method_rows(rows: list[dict[str, Any]], columns: list[Column], legend: str) -> list[str]:
    """A header, one line per method (its ``note`` after the cells, when it has one), then ``legend``."""
    def line(cells: list[str]) -> str:
        return " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, (_, w, _) in zip(cells, columns, strict=True))

    lines = [line([header for header, _, _ in columns])]
    lines += [line([cell(e) for _, _, cell in columns]) + (f"  {e['note']}" if e.get("note") else "") for e in rows]
    return [*lines, legend]


#: The leaderboard's terminal table: utility, baseline, worst leakage over the attacks, MIA AUC, speed.
LEADERBOARD_COLUMNS: list[Column] = [
    ("method", -13, lambda e: e["method"]), ("utility", 7, _figure("utility")),
    ("baseline", 8, _figure("baseline_acc_original")), ("worst |SSIM| (attack)", -31, _leak("leakage_ssim_attack")),
    ("worst aux acc", 13, _figure("leakage_aux_acc")), ("MIA AUC", 7, _figure("mia_auc")),
    ("images/s", 9, _figure("images_per_second"))]
#: The demo's terminal table: where each method is deployed, its utility there, its worst leakage, speed.
DEMO_COLUMNS: list[Column] = [
    ("method", -13, lambda e: e["method"]), ("deployed on", -11, lambda e: e.get("deployment") or "—"),
    ("utility", 7, _figure("utility")), ("worst |SSIM| (attack)", -38, _leak("leakage_attack")),
    ("images/s", 9, _figure("images_per_second"))]


def summary_lines(result: Result) -> list[str]:
    """The figure rows of the terminal summary (at most :data:`MAX_ROWS` + 2 lines; the leaderboard and the
    demo one row per method): readable names and units, then a line counting what was left out."""
    board = result.tables.get("leaderboard") if result.name == "leaderboard" else None
    if board:
        return _method_rows(board, LEADERBOARD_COLUMNS, "utility, baseline, aux acc: accuracies; worst |SSIM|: the "
                            "best recovery over the attacks (0 = nothing, 1 = the original); MIA AUC 0.5 = guessing")
    if result.name == "demo" and result.tables.get("methods"):
        baseline = fmt(result.summary.get("baseline_acc_original"))
        return _method_rows(result.tables["methods"], DEMO_COLUMNS, "utility: accuracy of a model trained on the "
                            f"method's output, where it is deployed (trained and tested on originals: {baseline}); "
                            "worst |SSIM|: the best recovery by a fast attack (0 = nothing, 1 = the original)")
    # the figures the glossary names first, in its order of importance, then the rest as they came
    rank = {key: i for i, key in enumerate(GLOSSARY)}
    items = sorted(result.summary.items(), key=lambda kv: rank.get(kv[0].rpartition(".")[2], len(rank)))
    width = min(max((len(label(k)) for k, _ in items[:MAX_ROWS]), default=0), 64)
    lines = [f"  {label(k):<{width}}  {fmt(v, term(k).unit)}" for k, v in items[:MAX_ROWS]]
    if len(items) > MAX_ROWS:
        lines.append(f"  ... and {len(items) - MAX_ROWS} more figures")
    return lines


def print_result(result: Result, written: list[str], echo: Callable[[str], None]) -> None:
    """Print ``result``'s short summary through ``echo``: title, figure rows, warnings, the attack verdict,
    and where the full figures are (the files in ``written``, or the options that write them)."""
    seconds = f", {result.seconds:.1f} s" if result.seconds else ""
    echo(f"{result.name}{seconds}")
    for line in summary_lines(result):
        echo(line)
    for line in cautions(result):
        echo(f"warning: {line}")
    judged = verdict(result)
    if judged:
        echo(f"verdict: {judged}")
    for path in written:
        echo(f"wrote {path}")
    echo(f"all {len(result.summary)} figures{' and tables' if result.tables else ''}: "
         + (f"in {' and '.join(written)}" if written else "add --json FILE or --report FILE"))


__all__ = ["BEAT_MARGIN", "MAX_ROWS", "print_result", "summary_lines", "verdict"]
