"""Batch multi-node rendezvous -> TF_CONFIG (no TensorFlow): every node gets the same cluster, main first."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from maas.training.rendezvous import RendezvousTimeout, batch_tf_config


def node_env(index: int, nodes: int = 3, main: int = 0, attempt: str = "1") -> dict[str, str]:
    return {
        "AWS_BATCH_JOB_ID": "job-123#" + str(index),
        "AWS_BATCH_JOB_ATTEMPT": attempt,
        "AWS_BATCH_JOB_NUM_NODES": str(nodes),
        "AWS_BATCH_JOB_NODE_INDEX": str(index),
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": str(main),
        "MAAS_TRAINING_NODE_ADDRESS": f"10.0.0.{10 + index}",
        "MAAS_TRAINING_NODE_PORT": "2222",
    }


def test_all_nodes_agree_and_the_main_node_is_the_chief(tmp_path: Path) -> None:
    results: dict[int, Any] = {}

    def node(i: int) -> None:
        results[i] = batch_tf_config(str(tmp_path / "ckpt"), node_env(i, main=1), timeout_s=20, poll_s=0.05)

    threads = [threading.Thread(target=node, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    workers = ["10.0.0.11:2222", "10.0.0.10:2222", "10.0.0.12:2222"]  # main node (index 1) first
    assert {i: r["cluster"]["worker"] for i, r in results.items()} == {i: workers for i in range(3)}
    assert {i: r["task"] for i, r in results.items()} == {
        1: {"type": "worker", "index": 0},
        0: {"type": "worker", "index": 1},
        2: {"type": "worker", "index": 2},
    }


def test_single_node_or_no_batch_means_no_tf_config(tmp_path: Path) -> None:
    assert batch_tf_config(str(tmp_path), {}) is None
    assert batch_tf_config(str(tmp_path), node_env(0, nodes=1)) is None


def test_missing_nodes_time_out_and_old_attempts_are_ignored(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "ckpt")
    with pytest.raises(RendezvousTimeout, match="1 of 2 nodes"):
        batch_tf_config(ckpt, node_env(1, nodes=2, attempt="1"), timeout_s=0.2, poll_s=0.05)
    with pytest.raises(RendezvousTimeout, match="1 of 2 nodes"):  # attempt 1's entry does not count
        batch_tf_config(ckpt, node_env(0, nodes=2, attempt="2"), timeout_s=0.2, poll_s=0.05)
