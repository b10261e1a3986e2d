"""Workers: sharding, sums and maxima over processes, and joining/leaving a process group."""

import dataclasses

import pytest
import torch
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st

from regionattack.bench.distributed import Workers, start_workers, stop_workers


def test_a_single_worker_is_the_main_one_and_passes_values_through():
    workers = Workers()
    assert (workers.rank, workers.world_size, workers.device) == (0, 1, torch.device("cpu"))
    assert workers.is_main and not Workers(rank=1, world_size=2).is_main
    assert workers.shard(3) == [0, 1, 2]
    counts = torch.tensor([1, 2])
    assert workers.sum(counts) is counts
    assert workers.max(0.25) == 0.25
    workers.barrier()  # no process group: a collective call would raise here
    with pytest.raises(dataclasses.FrozenInstanceError):
        workers.rank = 1


@given(count=st.integers(0, 40), world_size=st.integers(1, 6))
def test_the_shards_of_all_ranks_partition_the_items_evenly(count, world_size):
    shards = [Workers(rank=r, world_size=world_size).shard(count) for r in range(world_size)]
    assert sorted(i for shard in shards for i in shard) == list(range(count))
    assert all(shard == sorted(shard) for shard in shards)
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    for rank, shard in enumerate(shards):
        assert all(i % world_size == rank for i in shard)


@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo group, so the collective code paths run without torchrun."""
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_collectives_keep_the_callers_dtype_and_device(process_group):
    workers = Workers(rank=0, world_size=2)  # takes the collective path
    values = torch.tensor([0.1, 2.5], requires_grad=True)
    summed = workers.sum(values)
    assert summed is not values and summed.dtype == torch.float32 and not summed.requires_grad
    assert torch.equal(summed, values.detach())
    counts = torch.tensor([[3, 4]], dtype=torch.int32)
    assert workers.sum(counts).dtype == torch.int32 and torch.equal(workers.sum(counts), counts)
    assert workers.max(0.75) == 0.75 and isinstance(workers.max(1), float)
    workers.barrier()


def test_start_workers_without_torchrun_is_a_single_worker(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert start_workers() == Workers()
    assert start_workers("cpu") == Workers()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert start_workers().device == torch.device("cuda")
    assert start_workers("cpu").device == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert start_workers("cuda:1") == Workers(device=torch.device("cuda:1"))
    assert not dist.is_initialized()


def test_start_workers_under_torchrun_joins_the_group_once_and_stop_leaves_it(
    process_group, monkeypatch
):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    workers = start_workers("cpu")  # the group exists: it is not initialised a second time
    assert workers == Workers(rank=dist.get_rank(), world_size=dist.get_world_size())
    stop_workers()
    assert not dist.is_initialized()
    stop_workers()  # leaving twice is harmless
