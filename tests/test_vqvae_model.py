"""The VQ-VAE architecture against the seed's table, and the quantiser's behaviour."""

import pytest
import torch
from torch import nn

import racer_env
from racer_env.vqvae.model import PRESETS, VQVAE, ResBlock, preset_config


def conv_spec(m: nn.Module) -> tuple:
    kind = "up" if isinstance(m, nn.ConvTranspose1d) else "conv"
    return (kind, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0])


def layer_list(seq: nn.Sequential) -> list:
    out = []
    for m in seq:
        if isinstance(m, ResBlock):
            out.append(("RB", conv_spec(m.conv1), conv_spec(m.conv2)))
        else:
            out.append(conv_spec(m))
    return out


def rb(d, w=512):
    return ("RB", ("conv", w, w, 3, 1, d, d), ("conv", w, w, 1, 1, 0, 1))


def test_paper_preset_layers_match_the_table():
    model = racer_env.VQVAE.from_preset("paper", n_joints=16)
    enc = [("conv", 48, 512, 4, 2, 1, 1), rb(1), rb(3), rb(9), ("conv", 512, 512, 4, 2, 1, 1), rb(1), rb(3), rb(9),
           ("conv", 512, 512, 4, 2, 1, 1), rb(1), rb(3), rb(9), ("conv", 512, 512, 3, 1, 1, 1)]
    dec = [("conv", 512, 512, 3, 1, 1, 1), rb(9), rb(3), rb(1), ("up", 512, 512, 4, 2, 1, 1), rb(9), rb(3), rb(1),
           ("up", 512, 512, 4, 2, 1, 1), rb(9), rb(3), rb(1), ("up", 512, 48, 4, 2, 1, 1)]
    assert layer_list(model.encoder) == enc
    assert layer_list(model.decoder) == dec
    assert tuple(model.quantizer.codebook.shape) == (512, 512)


def test_paper_preset_parameter_count():
    def conv(i, o, k):  # weight + bias, the same for a transposed convolution
        return i * o * k + o

    w, j3 = 512, 48
    res_block = conv(w, w, 3) + conv(w, w, 1)
    encoder = conv(j3, w, 4) + 2 * conv(w, w, 4) + 9 * res_block + conv(w, w, 3)
    decoder = conv(w, w, 3) + 2 * conv(w, w, 4) + 9 * res_block + conv(w, j3, 4)
    codebook = 512 * 512
    model = VQVAE.from_preset("paper", n_joints=16)
    assert sum(p.numel() for p in model.parameters()) == encoder + decoder + codebook == 25_122_352


def test_paper_preset_shapes():
    model = VQVAE.from_preset("paper", n_joints=16)
    x = torch.randn(2, 48, 120)
    with torch.no_grad():
        z = model.encoder(x)
        assert z.shape == (2, 512, 15)
        x_hat, codes, _, _ = model(x)
    assert x_hat.shape == (2, 48, 120) and codes.shape == (2, 15)
    assert model.decode(codes).shape == (2, 48, 120)


def test_smaller_presets_change_only_width_codebook_and_code_dim():
    paper = preset_config("paper", 16).to_dict()
    for name in PRESETS:
        cfg = preset_config(name, 16).to_dict()
        changed = {k for k in cfg if cfg[k] != paper[k]}
        assert changed <= {"width", "codebook_size", "code_dim"}, name
    tiny = VQVAE.from_preset("tiny", n_joints=15)
    assert layer_list(tiny.encoder)[0] == ("conv", 45, 16, 4, 2, 1, 1)


def test_unknown_preset_and_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown VQ-VAE preset 'big'"):
        VQVAE.from_preset("big", n_joints=16)
    model = VQVAE.from_preset("tiny", n_joints=16)
    with pytest.raises(ValueError, match="multiple of 8"):
        model(torch.randn(1, 48, 30))
    with pytest.raises(ValueError, match=r"\(batch, 48, frames\)"):
        model(torch.randn(1, 45, 32))


def test_straight_through_gradient_reaches_the_encoder():
    model = VQVAE.from_preset("tiny", n_joints=16)
    x_hat, _, codebook_loss, commitment = model(torch.randn(3, 48, 32))
    (x_hat.abs().mean()).backward()
    assert model.encoder[0].weight.grad is not None and model.encoder[0].weight.grad.abs().sum() > 0
    assert codebook_loss.item() >= 0 and commitment.item() >= 0


def test_dead_codes_are_reset_and_ema_moves_the_codebook():
    torch.manual_seed(0)
    model = VQVAE.from_preset("tiny", n_joints=16, dead_code_reset=True, dead_code_steps=2, ema=True)
    before = model.quantizer.codebook.detach().clone()
    x = torch.randn(4, 48, 32)
    for _ in range(3):
        model(x, torch.Generator().manual_seed(0))
    after = model.quantizer.codebook.detach()
    assert not torch.equal(before, after)
    # every code was either used or re-seeded from an encoder output of the batch within 2 steps
    assert int(model.quantizer.steps_unused.max()) < 2
    assert not model.quantizer.codebook.requires_grad  # EMA: no gradient to the codebook
