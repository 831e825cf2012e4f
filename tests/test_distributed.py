"""cnnbook.distributed in one process: shards, the one-process Dist, device choice, and
joining no process group without torchrun. (Two real ranks: test_ddp.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbook.distributed import (
    Dist,
    average_buffers,
    close_distributed,
    current_dist,
    init_distributed,
    rank_device,
    shard,
)


@pytest.mark.parametrize(("n", "world_size"), [(16, 4), (10, 3), (2, 5), (7, 1)])
def test_shards_are_disjoint_and_cover_every_item(n, world_size):
    items = torch.arange(n)
    shares = [shard(items, rank, world_size) for rank in range(world_size)]
    together = torch.cat(shares).sort().values
    assert torch.equal(together, items), "every item in exactly one share"
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1
    assert shares[0].tolist() == list(range(0, n, world_size))


def test_one_process_dist_is_a_no_op():
    assert current_dist() == Dist(0, 1) and not Dist().active and Dist(1, 2).active
    assert Dist().all_sum([1, 2.5], torch.device("cpu")) == [1.0, 2.5]
    bn = nn.BatchNorm2d(3)
    bn.running_mean.fill_(2.0)
    average_buffers(bn, Dist())  # nothing to average with
    assert torch.equal(bn.running_mean, torch.full((3,), 2.0))


def test_without_torchrun_no_process_group_is_joined(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed()
    assert ctx == Dist() and not torch.distributed.is_initialized()
    close_distributed(ctx)  # a one-process run has nothing to leave


def test_rank_device():
    assert rank_device("cpu", Dist()) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert rank_device(None, Dist()) == torch.device("cpu")
        with pytest.raises(ValueError, match="device"):
            rank_device("cuda", Dist())


def test_bad_shard_arguments_name_the_argument():
    items = torch.arange(4)
    with pytest.raises(ValueError, match="world_size"):
        shard(items, 0, 0)
    with pytest.raises(ValueError, match="rank"):
        shard(items, 2, 2)
    with pytest.raises(TypeError, match="rank"):
        shard(items, 0.5, 2)
