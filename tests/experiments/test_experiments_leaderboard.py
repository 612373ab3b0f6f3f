"""The leaderboard's quick run: one row per method and attack, worst-case leakage, figures."""

from __future__ import annotations

from privis import attacks, methods


def test_quick_leaderboard_covers_every_method_and_attack(quick_leaderboard):
    result = quick_leaderboard
    names = [n for n, cls in methods.available().items() if cls.task == "classification"]
    attack_names = list(attacks.available())
    rows = result.tables["attacks"]
    assert {(r["method"], r["attack"]) for r in rows} == {(m, a) for m in names for a in attack_names}
    assert all(r["status"] in ("ok", "n/a") for r in rows), [r for r in rows if r["status"] == "error"]
    assert all(r["note"] for r in rows if r["status"] == "n/a")
    board = {e["method"]: e for e in result.tables["leaderboard"]}
    assert set(board) == set(names)
    baselines = {entry["baseline_acc_original"] for entry in board.values()}
    assert len(baselines) == 1  # one baseline model, trained once, for every method
    for name, entry in board.items():
        assert 0.0 <= entry["utility"] <= 1.0
        # utility is the service model's accuracy in the method's own deployment
        assert entry["utility"] == entry[f"protected_acc_{entry['deployment']}"]
        # the worst case over attacks is at least what the protected images show as they are
        assert entry["leakage_ssim"] >= entry["ssim_protected"]
        per_image = [r["ssim"] for r in rows if r["method"] == name and r["status"] == "ok"
                     and r["attack"] in ("filters", "learned-inversion", "invariants", "shredder",
                                         "auxiliary-recognition")]
        assert entry["leakage_ssim"] == max(per_image)
    assert board["veil"]["deployment"] == "original" and board["blur"]["deployment"] == "protected"
    # the keyspace is an analysis beside the attacks: its own table, the same column in the leaderboard
    keyspace = {r["method"]: r for r in result.tables["keyspace"]}
    assert set(keyspace) == set(names) and "keyspace" not in attack_names
    assert all(board[m]["keyspace_bits"] == keyspace[m]["bits_mean"] for m in names)
    assert keyspace["noise"]["status"] == "n/a" and "continuous noise" in keyspace["noise"]["note"]
    assert keyspace["blur"]["bits_mean"] == 0.0 and keyspace["veil"]["bits_mean"] == 64.0  # 8x8 digits, p = 1/2
    assert keyspace["visualmixer"]["bits_mean"] >= keyspace["visualmixer"]["bits_paper_mean"] > 0
    assert result.summary["visualmixer.keyspace.bits_mean"] == keyspace["visualmixer"]["bits_mean"]
    titles = [f.title for f in result.figures]
    assert titles[0].startswith("privacy-utility")
    assert sum("best recovery" in t for t in titles) == len(names)
    assert result.summary["methods"] == len(names)


def test_face_identity_counts_dlib_matches_and_takes_method_parameters(monkeypatch):
    from privis.experiments import fsap_tables
    from privis.experiments.leaderboard import face_identity

    real = fsap_tables.faces(3)
    real.groups = [g for g in real.groups if g.shape[-1] < 512]  # two LFW faces; the 512 px astronaut is slow
    monkeypatch.setattr(fsap_tables, "faces", lambda count: real)
    rows = face_identity(["noise"], count=2, seed=0, method_params={"noise": {"sigma": 0.001}})
    assert [r["method"] for r in rows] == ["noise"] and rows[0]["status"] == "ok" and rows[0]["faces"] == 2
    # imperceptible noise leaves every face recognisable, protected and after the filter attack
    assert rows[0]["face_match_protected"] == 1.0 and rows[0]["face_match_recovered"] == 1.0
