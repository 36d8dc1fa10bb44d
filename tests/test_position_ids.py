"""M-RoPE layouts against hand-computed cases: 2 text tokens, a T=2 video with a 2x2 merged grid, 2 text tokens."""

import pytest
import torch

from ssr_core.model.position_ids import (
    arrange_video_tokens,
    build_position_ids,
    video_span_position_ids,
    video_token_count,
)

V = 9  # video placeholder id
GRID = (2, 2, 2)  # T=2 groups, merged grid 2x2

# one visual or spatial block of a 2x2 grid starting at position 2: (h, w) = (2,2) (2,3) (3,2) (3,3)
H_BLOCK = [2, 2, 3, 3]
W_BLOCK = [2, 3, 2, 3]


def _ids(n_video):
    return torch.tensor([[1, 2] + [V] * n_video + [3, 4]])


def test_interleaved_hand_computed():
    pos, nxt = build_position_ids(_ids(16), V, [GRID], "interleaved")
    expected_t = [0, 1] + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [6, 7]
    expected_h = [0, 1] + H_BLOCK * 4 + [6, 7]
    expected_w = [0, 1] + W_BLOCK * 4 + [6, 7]
    assert pos[:, 0].tolist() == [expected_t, expected_h, expected_w]
    assert nxt.tolist() == [8]


def test_sequential_hand_computed():
    pos, nxt = build_position_ids(_ids(16), V, [GRID], "sequential")
    # visual t=0 -> 2, visual t=1 -> 3, spatial t=0 -> 2+T = 4, spatial t=1 -> 5
    expected_t = [0, 1] + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [6, 7]
    assert pos[0, 0].tolist() == expected_t
    assert pos[1, 0].tolist() == [0, 1] + H_BLOCK * 4 + [6, 7]
    assert pos[2, 0].tolist() == [0, 1] + W_BLOCK * 4 + [6, 7]
    assert nxt.tolist() == [8]
    # same positions as interleaved, but the token order differs: block 1 is spatial t=0 there
    span = video_span_position_ids(GRID, 0, "sequential")
    assert span[0].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


def test_visual_layout_uses_temporal_stride_and_max_rule():
    pos, nxt = build_position_ids(_ids(8), V, [GRID], "visual", temporal_stride=2.0)
    assert pos[0, 0].tolist() == [0, 1] + [2] * 4 + [4] * 4 + [5, 6]
    assert pos[1, 0].tolist() == [0, 1] + H_BLOCK * 2 + [5, 6]
    assert nxt.tolist() == [7]
    # large grid: text after continues after the largest (height) index
    pos, _ = build_position_ids(torch.tensor([[V] * 18 + [3]]), V, [(2, 3, 3)], "visual", temporal_stride=1.0)
    assert pos[:, 0, -1].tolist() == [3, 3, 3]


def test_left_padding_and_batches():
    ids = torch.cat([torch.tensor([[0, 0]]), _ids(16)], dim=1)
    mask = torch.tensor([[0, 0] + [1] * 20])
    two = torch.cat([ids, torch.cat([_ids(16), torch.tensor([[5, 5]])], dim=1)])
    mask2 = torch.cat([mask, torch.ones(1, 22, dtype=torch.long)])
    pos, nxt = build_position_ids(two, V, [GRID, GRID], "interleaved", attention_mask=mask2)
    ref, _ = build_position_ids(_ids(16), V, [GRID], "interleaved")
    assert torch.equal(pos[:, 0, 2:], ref[:, 0])
    assert pos[:, 0, :2].eq(0).all()
    assert torch.equal(pos[:, 1, :20], ref[:, 0])
    assert pos[0, 1, 20:].tolist() == [8, 9]
    assert nxt.tolist() == [8, 10]


def test_span_errors():
    with pytest.raises(ValueError, match="shorter"):
        build_position_ids(_ids(15), V, [GRID], "interleaved")
    with pytest.raises(ValueError, match="more video grids"):
        build_position_ids(_ids(16), V, [GRID, GRID], "interleaved")
    with pytest.raises(ValueError, match="layout"):
        video_token_count(GRID, "random")


def test_arrange_tokens_matches_position_layout():
    t, h, w = GRID
    visual = torch.arange(t * h * w).float().view(-1, 1)
    spatial = 100 + visual
    inter = arrange_video_tokens(visual, spatial, GRID, "interleaved").view(-1).tolist()
    assert inter == [0, 1, 2, 3, 100, 101, 102, 103, 4, 5, 6, 7, 104, 105, 106, 107]
    seq = arrange_video_tokens(visual, spatial, GRID, "sequential").view(-1).tolist()
    assert seq == list(range(8)) + list(range(100, 108))
    assert arrange_video_tokens(visual, None, GRID, "visual") is visual
    # visual tokens sit at even temporal indices, spatial ones at the odd index right after
    span = video_span_position_ids(GRID, 0, "interleaved")
    is_spatial = torch.tensor(inter) >= 100
    assert span[0][~is_spatial].remainder(2).eq(0).all() and span[0][is_spatial].remainder(2).eq(1).all()
