"""The Veil frontier experiment: one point per (setting, augmentation), flagged against both targets."""

from __future__ import annotations

from privis.experiments.veil_frontier import frontier


def test_frontier_points_are_flagged_against_both_targets():
    result = frontier(data="digits", quick=True, variants=[("T=10", {"steps": 10}), ("RPF only (T=0)", {"steps": 0})],
                      augments=("none",))
    (rows,) = result.tables.values()
    assert [r["variant"] for r in rows] == ["T=10", "RPF only (T=0)"]
    base = result.summary["baseline_acc_original"]
    for row in rows:
        assert row["meets_both_targets"] == (row["acc_on_original"] >= base - 0.05 and row["ssim_mean"] <= 0.05)
        assert 0 <= row["ssim_mean"] <= 1 and 0 <= row["acc_on_original"] <= 1
    assert result.summary["points"] == 2
    assert result.summary["points_meeting_both"] == sum(r["meets_both_targets"] for r in rows)
    assert result.summary["best_acc_on_original"] in {r["acc_on_original"] for r in rows}
    assert result.figures and result.figures[0].title.startswith("frontier")
