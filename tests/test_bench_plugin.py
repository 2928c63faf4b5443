"""Plug-ins: a method and an already-trained encoder defined here (not in the package) reach the leaderboard."""

from __future__ import annotations

import torch
from click.testing import CliRunner
from torch import nn

from causal3dident.benchmarks.methods import Method, register_method, resolve_method
from causal3dident.benchmarks.tiers import load_tier
from causal3dident.cli import main


class MeanPoolEncoder(nn.Module):
    """Colour statistics -> (hidden, final): a deliberately simple encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(6, 16)
        self.final = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        h = self.hidden(stats)
        return h, self.final(torch.tanh(h))


class Alignment(Method):
    """Align the views, keep the batch spread out."""

    name = "plugin_alignment"

    def build_encoder(self, tier) -> nn.Module:
        return MeanPoolEncoder()

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return (z1 - z2).pow(2).sum(1).mean() - torch.cdist(z1, z1).mean()


def make_method(tier) -> Method:
    return Alignment()


def frozen_encoder(tier) -> nn.Module:
    torch.manual_seed(0)
    return MeanPoolEncoder()


def test_plugin_method_and_encoder_show_up_in_leaderboard(synthetic_h5, tmp_path):
    runner = CliRunner()
    common = ["--setting", "da_colour", "--tier", "smoke", "--data", str(synthetic_h5), "--out", str(tmp_path / "runs")]
    trained = runner.invoke(main, ["bench", "run", "--method", f"{__file__}:make_method", *common])
    assert trained.exit_code == 0, trained.output
    frozen = runner.invoke(main, ["bench", "run", "--encoder", f"{__file__}:frozen_encoder",
                                  "--method", "plugin_frozen", *common])
    assert frozen.exit_code == 0, frozen.output
    out = tmp_path / "board" / "LEADERBOARD.md"
    board = runner.invoke(main, ["bench", "leaderboard", str(tmp_path / "runs"), "--out", str(out)])
    assert board.exit_code == 0, board.output
    text = out.read_text()
    assert "## plugin_alignment, tier `smoke`" in text and "## plugin_frozen, tier `smoke`" in text
    assert "| da_colour | DA: colour distortion |" in text
    assert (tmp_path / "board" / "LEADERBOARD_plugin_alignment_smoke.png").stat().st_size > 1000


def test_register_method_makes_a_name_resolvable():
    register_method("aligned", make_method)
    assert resolve_method("aligned", load_tier("smoke")).name == "plugin_alignment"
