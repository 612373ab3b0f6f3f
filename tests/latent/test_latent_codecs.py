"""The privis codecs: shapes and their errors, the decoder's clamp, the certified bound of the contractive codec."""

from __future__ import annotations

import pytest
import torch

from linear_codec import LinearCodec
from privis.errors import InvalidInputError
from privis.latent import ContractiveCodec, ConvAutoencoder, measure_lipschitz
from privis.latent.contractive import MaxMin, NormalizedLinear


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 5, 7)])
def test_autoencoder_groups_come_coarse_to_fine_at_any_size(shape):
    torch.manual_seed(0)  # a random init can leave a coarse unit dead (about 1 in 160 draws): fix the draw
    codec = ConvAutoencoder(*shape, groups=(1, 2, 3), group_size=4, base=4).eval()
    images = torch.rand(2, *shape)
    z = codec.encode(images)
    assert z.shape == (2, 6, 4) and codec.latent_shape == (6, 4) and codec.latent_dim == 24
    assert codec.group_names == ("coarse-0", "medium-0", "medium-1", "fine-0", "fine-1", "fine-2")
    assert codec.decode(z).shape == images.shape
    # the coarse groups are read off the smallest map: changing them alone changes the decoded image
    moved = z.clone()
    moved[:, 0] += 1.0
    assert not torch.equal(codec.decode(moved), codec.decode(z))


def test_autoencoder_heads_stay_small_on_large_images_and_leave_small_ones_alone():
    # up to 32 x 32 every map is within the cap: the same weights, the same outputs as an uncapped codec
    torch.manual_seed(0)
    capped = ConvAutoencoder(3, 32, 32, groups=(1, 1, 2), group_size=4, base=4).eval()
    uncapped = ConvAutoencoder(3, 32, 32, groups=(1, 1, 2), group_size=4, base=4, head_size=None).eval()
    uncapped.load_state_dict(capped.state_dict())
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(capped.decode(capped.encode(x)), uncapped.decode(uncapped.encode(x)))
    # a 512 x 512 RGB codec at the defaults: the fine map (256 x 256 x 16) is pooled to 16 x 16 for its head
    big = ConvAutoencoder(3, 512, 512)
    assert sum(p.numel() for p in big.parameters()) < 10_000_000
    assert sum(p.numel() for p in ConvAutoencoder(3, 512, 512, head_size=None).parameters()) > 500_000_000
    z = big.encode(torch.rand(1, 3, 512, 512))
    assert z.shape == (1, 8, 64) and big.decode(z).shape == (1, 3, 512, 512)
    with pytest.raises(InvalidInputError, match="head_size"):
        ConvAutoencoder(1, 8, 8, head_size=0)


def test_shape_and_value_errors_name_the_expected_shape():
    codec = ConvAutoencoder(1, 8, 8, groups=(1, 1, 1), group_size=2, base=4)
    with pytest.raises(InvalidInputError, match=r"expects images of shape \(N, 1, 8, 8\), got \(2, 1, 9, 9\)"):
        codec.encode(torch.rand(2, 1, 9, 9))
    with pytest.raises(InvalidInputError, match=r"shape \(N, 3, 2\)"):
        codec.decode(torch.zeros(2, 3, 3))
    with pytest.raises(InvalidInputError, match="NaN"):
        codec.decode(torch.full((1, 3, 2), float("nan")))
    with pytest.raises(InvalidInputError, match="floating tensor"):
        codec.decode(torch.zeros(1, 3, 2, dtype=torch.long))
    for bad in ({"groups": (1, 1)}, {"groups": (0, 1, 1)}, {"group_size": 0}, {"base": 2}):
        with pytest.raises(InvalidInputError):
            ConvAutoencoder(1, 8, 8, **bad)
    with pytest.raises(InvalidInputError, match="1 or 3 channels"):
        ConvAutoencoder(2, 8, 8)
    with pytest.raises(InvalidInputError, match="hidden must be even"):
        ContractiveCodec(1, 8, 8, hidden=(3, 4))
    assert len(ContractiveCodec(1, 8, 8, groups=1, group_size=3).encoder) == 1  # linear by default


@pytest.mark.parametrize("codec", [LinearCodec(), ContractiveCodec(1, 4, 4, groups=2, group_size=8, hidden=(8, 8))])
def test_decode_clamps_to_the_unit_interval(codec):
    latents = 1e3 * torch.randn(5, 2, 8, generator=torch.Generator().manual_seed(0))
    out = codec.eval().requires_grad_(False).decode(latents)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_maxmin_sorts_pairs_and_never_expands_distances():
    gen = torch.Generator().manual_seed(1)
    assert torch.equal(MaxMin()(torch.tensor([[1.0, 3.0, -1.0, -2.0]])), torch.tensor([[3.0, 1.0, -1.0, -2.0]]))
    a, b = torch.randn(1000, 6, generator=gen), torch.randn(1000, 6, generator=gen)
    assert bool(((MaxMin()(a) - MaxMin()(b)).norm(dim=1) <= (a - b).norm(dim=1) + 1e-6).all())


def test_normalized_layers_divide_out_their_exact_spectral_norm():
    layer = NormalizedLinear(12, 7).eval()
    with torch.no_grad():
        layer.weight.mul_(25.0)  # norm far above 1
    exact = float(torch.linalg.svdvals(layer.weight.double())[0])
    assert float(layer.spectral_norm()) == pytest.approx(exact, rel=1e-6)
    assert float(torch.linalg.svdvals(layer.normalized_weight().double())[0]) == pytest.approx(1.0, rel=1e-6)
    with torch.no_grad():
        layer.weight.mul_(0.001)  # below 1: left as it is
    assert torch.equal(layer.normalized_weight(), layer.weight)


def test_the_certified_bound_holds_for_large_weights_and_is_never_beaten():
    codec = ContractiveCodec(1, 6, 6, groups=2, group_size=4, hidden=(16, 8)).eval()
    with torch.no_grad():
        for p in codec.parameters():
            p.mul_(40.0)  # every layer far beyond norm 1 before the normalisation
    bound = codec.lipschitz_bound
    assert 0.0 < bound <= 1.0 + 1e-6
    expected = 1.0
    for layer in (m for m in codec.modules() if isinstance(m, NormalizedLinear)):
        exact = float(torch.linalg.svdvals(layer.weight.double())[0])
        expected *= exact / max(1.0, float(layer.spectral_norm()))
    assert bound == pytest.approx(expected, rel=1e-9)
    found = measure_lipschitz(codec, samples=16, pairs=400, iterations=10, random_state=0)
    assert found.certified_bound == bound
    assert found.jacobian_max <= bound * (1 + 1e-5) and found.pair_ratio_max <= bound * (1 + 1e-5)
    assert found.estimate > 0


def test_pca_start_of_the_linear_contractive_codec_is_exact_on_low_rank_data_and_stays_certified():
    gen = torch.Generator().manual_seed(2)
    basis, _ = torch.linalg.qr(torch.randn(64, 16, generator=gen))
    images = (0.5 + 0.02 * torch.randn(200, 16, generator=gen) @ basis.T).reshape(200, 1, 8, 8)
    codec = ContractiveCodec(1, 8, 8, groups=2, group_size=8).fit_pca(images).eval()
    torch.testing.assert_close(codec.decode(codec.encode(images)), images, atol=1e-5, rtol=0)
    assert codec.lipschitz_bound <= 1.0
    with pytest.raises(InvalidInputError, match="linear codec"):
        ContractiveCodec(1, 8, 8, hidden=(8,)).fit_pca(images)
