"""The Ray engine's actor placement (actor_options), computed for fake cluster resources: no Ray, no GPU."""

from __future__ import annotations

import pytest

from privis.engine.ray_engine import GPU_BATCH_SIZE, ActorPlan, actor_options
from privis.errors import InvalidInputError

CPU_CLUSTER = {"CPU": 16.0, "memory": 6.4e10, "node:127.0.0.1": 1.0}
GPU_CLUSTER = {"CPU": 64.0, "GPU": 4.0, "memory": 5.1e11}


def test_cpu_cluster_keeps_cpu_workers_and_the_batch_size():
    assert actor_options(CPU_CLUSTER, 3, 64) == ActorPlan(size=3, num_gpus=0.0, batch_size=64)
    assert actor_options(CPU_CLUSTER, None, 64) == ActorPlan(size=1, num_gpus=0.0, batch_size=64)
    assert actor_options({**CPU_CLUSTER, "GPU": 0.0}, 2, 8).device == "cpu"


def test_gpu_cluster_places_one_model_copy_per_gpu_with_a_per_device_batch():
    plan = actor_options(GPU_CLUSTER, None, 64)
    assert plan == ActorPlan(size=4, num_gpus=1.0, batch_size=GPU_BATCH_SIZE) and plan.device == "cuda"
    assert actor_options(GPU_CLUSTER, None, 4096).batch_size == 4096  # a larger asked batch is kept
    assert actor_options(GPU_CLUSTER, 2, 64).size == 2  # fewer actors than GPUs when asked
    assert actor_options(GPU_CLUSTER, 10, 64).size == 4  # never more than can be placed


def test_gpu_fractions_share_a_device_and_its_batch():
    plan = actor_options(GPU_CLUSTER, None, 64, gpus_per_worker=0.5, gpu_batch_size=600)
    assert plan == ActorPlan(size=8, num_gpus=0.5, batch_size=300)  # two actors, 600 images per GPU
    assert actor_options({"GPU": 3.0}, None, 64, gpus_per_worker=0.1).size == 30  # 3 / 0.1 rounds below 30
    assert actor_options(GPU_CLUSTER, 5, 64, gpus_per_worker=0.0) == ActorPlan(size=5, num_gpus=0.0, batch_size=64)


def test_placements_that_cannot_be_made_are_refused():
    with pytest.raises(InvalidInputError, match="gpus_per_worker must be in"):
        actor_options(GPU_CLUSTER, None, 64, gpus_per_worker=2.0)
    with pytest.raises(InvalidInputError, match="less than the 1 each actor holds"):
        actor_options({"GPU": 0.5}, None, 64)


def test_a_gpu_actor_moves_its_copy_of_the_models_to_its_device(tmp_path):
    """The placement code of a GPU actor, run with the "meta" device (no GPU here): every model the protector
    holds moves; a CPU actor leaves them where they are."""
    import torch

    from privis.engine.ray_engine import ProtectWorker
    from privis.methods.baselines import GaussianNoise

    args = ("plain", None, str(tmp_path), [], [], (1, 8, 8), "x", "png")
    protector = GaussianNoise()
    protector.model_ = torch.nn.Linear(2, 2)  # stands for a fitted generator
    assert ProtectWorker(protector, *args).protector.model_.weight.device.type == "cpu"
    worker = ProtectWorker(protector, *args, device="meta")
    assert worker.protector.model_.weight.device.type == "meta" and worker.device.type == "meta"


def test_protect_and_the_cli_pass_the_placement_options_to_the_ray_engine(tmp_path, monkeypatch):
    """``workers`` unset means "Ray decides" (one actor per GPU share); an explicit 1 stays 1, and the GPU options
    of ``privis protect`` reach the engine (Ray itself is replaced by the local engine: no cluster here)."""
    from typer.testing import CliRunner

    from privis.cli.main import app
    from privis.engine import local, protect, ray_engine
    from privis.methods.baselines import GaussianNoise

    seen: list[dict] = []

    def fake_run_ray(ctx, **options):
        seen.append(options)
        local.run_local(ctx)

    monkeypatch.setattr(ray_engine, "run_ray", fake_run_ray)
    state = str(tmp_path / "state")
    protect(GaussianNoise(), "digits:test[:6]", tmp_path / "a", engine="ray", state_dir=state)
    protect(GaussianNoise(), "digits:test[:6]", tmp_path / "b", engine="ray", workers=1, gpus_per_worker=0.5,
            gpu_batch_size=300, state_dir=state)
    result = CliRunner().invoke(app, ["protect", "noise", "--data", "digits:test[:6]", "--out", str(tmp_path / "c"),
                                      "--engine", "ray", "--workers", "2", "--gpus-per-worker", "0.25",
                                      "--state-dir", state])
    assert result.exit_code == 0, result.output
    assert [(s["workers"], s["gpus_per_worker"], s["gpu_batch_size"]) for s in seen] == [
        (None, None, None), (1, 0.5, 300), (2, 0.25, None)]
    assert len(list((tmp_path / "c").rglob("*.png"))) == 6
    refused = CliRunner().invoke(app, ["protect", "noise", "--data", "digits:test[:6]", "--out", str(tmp_path / "d"),
                                       "--engine", "ray", "--gpus-per-worker", "2", "--state-dir", state])
    assert refused.exit_code == 2 and "--gpus-per-worker" in refused.output
