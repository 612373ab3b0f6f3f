"""Smoke runs (quick sizes) of the VisualMixer experiments on the 25 x 25 LFW subset (edges exercised)."""

from __future__ import annotations

import json

import pytest

from privis import experiments


def test_registered() -> None:
    names = experiments.available()
    for name in ("visualmixer-table2", "visualmixer-fig3", "visualmixer-fig6", "visualmixer-bounds"):
        assert name in names


def test_table2_and_fig6_quick() -> None:
    res = experiments.get("visualmixer-table2").run(data="lfw-subset", quick=True, archs=("lenet5",))
    rows = res.tables["Table II analogue (accuracy)"]
    assert {r["model"] for r in rows} == {"lenet5"}
    assert all(0.0 <= r["vim"] <= 1.0 and r["vfe_vim"] > r["vfe_original"] for r in rows)
    # each row's drop is its own two accuracies, and the summary quotes the rows
    for r in rows:
        assert r["drop_points"] == pytest.approx(100 * (r["plain"] - r["vim"]))
        assert r["drop_points_bare"] == pytest.approx(100 * (r["plain"] - r["vim_bare"]))
        assert res.summary[f"lfw-subset.{r['model']}.vim"] == r["vim"]
    assert res.summary["max_drop_points"] == pytest.approx(max(r["drop_points"] for r in rows))
    assert res.figures and json.loads(res.to_json())["summary"]["lfw-subset.vfe_vim_mean"] > 0
    curves = experiments.get("visualmixer-fig6").run(data="lfw-subset", quick=True, epochs=1)
    opts = {r["optimizer"] for r in curves.tables["Fig. 6 analogue (curves)"]}
    assert opts == {"adam", "st-adam"} and len(curves.figures) == 2


def test_fig3_quick() -> None:
    res = experiments.get("visualmixer-fig3").run(data="lfw-subset", quick=True)
    rows = {r["strategy"]: r for r in res.tables["Fig. 3 analogue"]}
    assert "non-uniform (Algorithm 1)" in rows and "uniform WS=2" in rows
    # bigger uniform windows never lower the VFE of the shuffled images (Fig. 3's trend)
    assert rows["uniform whole image"]["vfe_mean"] > rows["uniform WS=2"]["vfe_mean"] > rows["plain"]["vfe_mean"]
