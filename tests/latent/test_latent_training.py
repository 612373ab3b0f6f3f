"""Codec training (seeded, global RNG untouched), quality figures, codec files and the TorchScript adapter."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from privis.errors import InvalidInputError
from privis.latent import (
    ContractiveCodec,
    ConvAutoencoder,
    TorchScriptCodec,
    codec_quality,
    load_codec,
    save_codec,
    train_codec,
)
from privis.metrics import abs_ssim, psnr


@pytest.fixture(scope="module")
def images(digits_train) -> Tensor:
    return digits_train.images[:64].clone()


def test_training_is_seeded_leaves_the_global_rng_alone_and_learns(images):
    rng = torch.get_rng_state()
    opts = {"epochs": 10, "batch_size": 8, "groups": (1, 1, 2), "group_size": 8, "base": 8}
    a = train_codec(images, random_state=3, **opts)
    b = train_codec(images, random_state=3, **opts)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    untrained = ConvAutoencoder(1, 8, 8, groups=(1, 1, 2), group_size=8, base=8).eval()
    psnr_key = "reconstruction_psnr_mean"
    assert codec_quality(a, images)[psnr_key] > codec_quality(untrained, images)[psnr_key] + 3.0
    with pytest.raises(InvalidInputError, match="unknown codec kind"):
        train_codec(images, "vae")
    with pytest.raises(InvalidInputError, match="epochs"):
        train_codec(images, epochs=0)


def test_quality_is_the_metrics_of_the_reconstruction(images):
    codec = ContractiveCodec(1, 8, 8, groups=2, group_size=8, hidden=(16, 16)).eval()
    with torch.no_grad():
        recon = codec.decode(codec.encode(images))
    got = codec_quality(codec, images, batch_size=20)
    assert got["reconstruction_ssim_mean"] == pytest.approx(float(abs_ssim(images, recon).mean()), rel=1e-5)
    assert got["reconstruction_psnr_mean"] == pytest.approx(float(psnr(images, recon).mean()), rel=1e-5)


@pytest.mark.parametrize("codec", [ConvAutoencoder(1, 8, 8, groups=(1, 1, 1), group_size=4, base=4),
                                   ContractiveCodec(1, 8, 8, groups=2, group_size=4, hidden=(8, 8))])
def test_codec_files_round_trip(codec, images, tmp_path):
    codec.eval()
    path = save_codec(codec, tmp_path / "codec.pt", extra={"ssim_mean": 0.5})
    loaded = load_codec(path)
    assert type(loaded) is type(codec) and loaded.extra == {"ssim_mean": 0.5}
    assert torch.equal(loaded.decode(loaded.encode(images)), codec.decode(codec.encode(images)))
    assert loaded.lipschitz_bound == codec.lipschitz_bound


def test_an_autoencoder_saved_before_the_heads_cap_still_loads(tmp_path):
    import json

    torch.manual_seed(0)
    old = ConvAutoencoder(1, 40, 40, groups=(1, 1, 1), group_size=2, base=4, head_size=None).eval()
    path = save_codec(old, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    config = json.loads(payload["config"])
    del config["head_size"]  # the format written before the cap existed
    payload["config"] = json.dumps(config)
    torch.save(payload, path)
    loaded = load_codec(path)
    x = torch.rand(2, 1, 40, 40)
    assert torch.equal(loaded.decode(loaded.encode(x)), old.decode(old.encode(x)))


def test_bad_codec_files_are_refused_by_name(tmp_path):
    with pytest.raises(InvalidInputError, match="codec file not found"):
        load_codec(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a codec")
    with pytest.raises(InvalidInputError, match="junk.pt: not a readable privis codec"):
        load_codec(junk)
    other = tmp_path / "other.pt"
    torch.save({"arch": "lenet5"}, other)
    with pytest.raises(InvalidInputError, match="not a privis codec file"):
        load_codec(other)
    with pytest.raises(InvalidInputError, match="codec.json"):
        load_codec(tmp_path)
    with pytest.raises(InvalidInputError, match="save_codec saves"):
        save_codec(nn.Identity(), tmp_path / "x.pt")  # type: ignore[arg-type]


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 12)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1)).reshape(-1, 3, 4)


class _Decoder(nn.Module):
    def __init__(self, side: int = 8) -> None:
        super().__init__()
        self.side = side
        self.fc = nn.Linear(12, side * side)

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(self.fc(z.flatten(1))).reshape(-1, 1, self.side, self.side)


def _scripted(tmp_path, decoder_side: int = 8):
    torch.manual_seed(0)
    enc, dec = torch.jit.script(_Encoder()), torch.jit.script(_Decoder(decoder_side))
    enc.save(str(tmp_path / "enc.pt"))
    dec.save(str(tmp_path / "dec.pt"))
    return enc, dec


def test_torchscript_pair_probes_shapes_converts_ranges_and_round_trips(tmp_path, images):
    enc, dec = _scripted(tmp_path)
    codec = TorchScriptCodec(tmp_path / "enc.pt", tmp_path / "dec.pt", image_shape=(1, 8, 8), value_range="signed")
    assert codec.latent_shape == (3, 4) and codec.group_names == ("group-0", "group-1", "group-2")
    with torch.no_grad():
        z = codec.encode(images)
        assert torch.allclose(z, enc(images * 2 - 1))
        assert torch.allclose(codec.decode(z), (dec(z) + 1) / 2)
    saved = save_codec(codec, tmp_path / "pair")
    assert sorted(p.name for p in saved.iterdir()) == ["codec.json", "decoder.pt", "encoder.pt"]
    again = load_codec(saved)
    assert isinstance(again, TorchScriptCodec) and again.value_range == "signed"
    assert torch.equal(again.decode(again.encode(images)), codec.decode(codec.encode(images)))


def test_torchscript_pair_refuses_wrong_files_and_shapes(tmp_path):
    _scripted(tmp_path, decoder_side=6)
    enc, dec = tmp_path / "enc.pt", tmp_path / "dec.pt"
    with pytest.raises(InvalidInputError, match=r"decoder must return \(N, 1, 8, 8\) images, got \(2, 1, 6, 6\)"):
        TorchScriptCodec(enc, dec, image_shape=(1, 8, 8))
    with pytest.raises(InvalidInputError, match=r"declared latent_shape \(18, 512\) but the encoder emits \(3, 4\)"):
        TorchScriptCodec(enc, dec, image_shape=(1, 8, 8), latent_shape=(18, 512))
    with pytest.raises(InvalidInputError, match="encoder fails on a"):
        TorchScriptCodec(enc, dec, image_shape=(3, 8, 8))
    (tmp_path / "plain.pt").write_bytes(b"junk")
    with pytest.raises(InvalidInputError, match="not a TorchScript encoder"):
        TorchScriptCodec(tmp_path / "plain.pt", dec, image_shape=(1, 8, 8))
    with pytest.raises(InvalidInputError, match="decoder file not found"):
        TorchScriptCodec(enc, tmp_path / "none.pt", image_shape=(1, 8, 8))
    with pytest.raises(InvalidInputError, match="value_range"):
        TorchScriptCodec(enc, dec, image_shape=(1, 8, 8), value_range="0-255")
