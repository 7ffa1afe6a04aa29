"""Distribution strategy and mixed precision (imports TensorFlow).

- One instance (the usual Batch job): `tf.distribute.MirroredStrategy` over every local GPU; with no GPU it
  mirrors onto the one CPU device, so the same code path runs on a laptop, in CI and on g5/p4d instances.
- AWS Batch multi-node parallel jobs: TF_CONFIG on every node (`maas.training.rendezvous` builds it from
  the Batch environment) selects `MultiWorkerMirroredStrategy`: synchronous all-reduce data parallelism
  across nodes, each node using all its GPUs. Worker 0 is the chief: only it uploads checkpoints and
  publishes the model.
- Mixed precision (`mixed_float16`) only when a GPU is present (spec training.mixed_precision "auto"); on CPU
  float16 is slower and less precise, so it stays float32. The output layer is always float32.

The strategy must be created before any other TensorFlow op runs (MultiWorkerMirroredStrategy requires it).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("maas.training")


@dataclass
class StrategyInfo:
    strategy: Any
    kind: str  # "mirrored" | "multi_worker_mirrored"
    replicas: int
    gpus: int
    is_chief: bool
    worker_index: int
    mixed_precision: bool


def tf_config_worker() -> tuple[int, int, bool] | None:
    """(index, number of workers, is_chief) from TF_CONFIG, or None when TF_CONFIG is unset."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    cfg = json.loads(raw)
    cluster = cfg.get("cluster", {})
    task = cfg.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    is_chief = kind == "chief" or (kind == "worker" and index == 0 and not cluster.get("chief"))
    return index, workers, is_chief


def select_strategy(mixed_precision: str = "auto") -> StrategyInfo:
    import keras
    import tensorflow as tf

    worker = tf_config_worker()
    if worker is not None:
        # Collective ops over gRPC between the nodes; NCCL between GPUs when there are GPUs.
        strategy: Any = tf.distribute.MultiWorkerMirroredStrategy()
        keras_multi_worker_compat()
        kind = "multi_worker_mirrored"
        index, _, is_chief = worker
    else:
        strategy = tf.distribute.MirroredStrategy()
        kind, index, is_chief = "mirrored", 0, True
    gpus = len(tf.config.list_physical_devices("GPU"))
    use_mp = mixed_precision == "auto" and gpus > 0
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mp else "float32")
    info = StrategyInfo(
        strategy=strategy,
        kind=kind,
        replicas=int(strategy.num_replicas_in_sync),
        gpus=gpus,
        is_chief=is_chief,
        worker_index=index,
        mixed_precision=use_mp,
    )
    log.info(
        "strategy=%s replicas=%d gpus=%d mixed_precision=%s chief=%s",
        kind,
        info.replicas,
        gpus,
        use_mp,
        is_chief,
    )
    return info


_COMPAT_APPLIED = False


def keras_multi_worker_compat() -> None:
    """Work around two Keras 3.15 bugs that break `model.fit` under MultiWorkerMirroredStrategy.

    1. `TensorFlowTrainer._maybe_symbolic_build` MEAN-reduces the first distributed batch across workers
       just to learn its shapes, and the collective reduce rejects the PerReplica value. Taking the local
       replica's batch gives the same shapes.
    2. The train/test step reduces its (already synchronised) scalar metrics with reduction="auto", which
       for multi-worker means `strategy.reduce("MEAN", v, axis=0)` and fails on scalars. "first" returns
       the local value, which the metric all-reduce has already made equal on every worker.
    Verified with 2 CPU workers (tests/unit/test_train_multiworker.py). Remove once Keras fixes both.
    """
    global _COMPAT_APPLIED
    if _COMPAT_APPLIED:
        return
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction == "auto" and tf_trainer._collective_all_reduce_multi_worker(strategy):
            reduction = "first"
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: (
                        self.distribute_strategy.experimental_local_results(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    _COMPAT_APPLIED = True
