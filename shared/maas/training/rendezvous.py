"""TF_CONFIG for AWS Batch multi-node parallel (MNP) jobs, through a rendezvous on the checkpoint store.

Batch gives every node of an MNP job AWS_BATCH_JOB_NUM_NODES, AWS_BATCH_JOB_NODE_INDEX and
AWS_BATCH_JOB_MAIN_NODE_INDEX (plus the main node's IP to the children), but no node learns the other
children's addresses. So each node writes `{"address": "ip:port"}` to
`<checkpoint_uri>/rendezvous/<job id>/attempt-<n>/node-<index>.json` and waits until all nodes have written
theirs. Then every node builds the same cluster spec, with the main node as worker 0 (the chief). The
attempt number keeps a retried job (new instances, new addresses) from reading stale entries.

Run before TensorFlow is imported: `maas-train` calls `ensure_tf_config()` itself, so a multi-node job
definition needs nothing beyond the usual `maas-train --spec Ref::spec` command. Nodes must allow TCP on
the port (MAAS_TRAINING_NODE_PORT, default 12345) between each other (same security group).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import orjson

from maas import settings
from maas.training import storage

log = logging.getLogger("maas.training")

DEFAULT_PORT = 12345
DEFAULT_TIMEOUT_S = 900.0


class RendezvousTimeout(RuntimeError):
    pass


def own_address() -> str:
    """This host's private IPv4 (the interface that routes outwards; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return socket.gethostbyname(socket.gethostname())


def _is_node_entry(uri: str) -> bool:
    # Only finished entries: a local write goes through `node-NNNN.json.tmp` before its atomic rename.
    name = uri.rsplit("/", 1)[-1]
    return name.startswith("node-") and name.endswith(".json")


def batch_tf_config(
    checkpoint_uri: str,
    env: Mapping[str, str] | None = None,
    *,
    timeout_s: float | None = None,
    poll_s: float = 1.0,
) -> dict[str, Any] | None:
    """The TF_CONFIG dict for this node of a Batch MNP job, or None outside one (or with a single node)."""
    env = os.environ if env is None else env
    nodes = int(env.get("AWS_BATCH_JOB_NUM_NODES", "0") or 0)
    if nodes < 2:
        return None
    index = int(env["AWS_BATCH_JOB_NODE_INDEX"])
    main = int(env.get("AWS_BATCH_JOB_MAIN_NODE_INDEX", "0") or 0)
    job_id = env.get("AWS_BATCH_JOB_ID", "local").split("#", 1)[0].split(":", 1)[0]
    attempt = env.get("AWS_BATCH_JOB_ATTEMPT", "1")
    port = int(env.get(settings.TRAINING_NODE_PORT, "") or DEFAULT_PORT)
    host = env.get(settings.TRAINING_NODE_ADDRESS) or own_address()
    timeout = float(
        timeout_s
        if timeout_s is not None
        else env.get(settings.TRAINING_RENDEZVOUS_TIMEOUT, "") or DEFAULT_TIMEOUT_S
    )
    prefix = storage.join(checkpoint_uri, "rendezvous", job_id, f"attempt-{attempt}")
    me = {"address": f"{host}:{port}", "index": index}
    storage.write_bytes(storage.join(prefix, f"node-{index:04d}.json"), orjson.dumps(me), "application/json")
    log.info("rendezvous: node %d/%d at %s waiting under %s", index, nodes, me["address"], prefix)

    deadline = time.monotonic() + timeout
    while True:
        found = [u for u in storage.list_files(prefix + "/") if _is_node_entry(u)]
        if len(found) >= nodes:
            break
        if time.monotonic() > deadline:
            raise RendezvousTimeout(
                f"rendezvous: {len(found)} of {nodes} nodes after {timeout:.0f}s under {prefix}"
            )
        time.sleep(poll_s)
    addresses: dict[int, str] = {}
    for uri in found:
        entry = orjson.loads(storage.read_bytes(uri))
        addresses[int(entry["index"])] = str(entry["address"])
    order = [main, *sorted(i for i in addresses if i != main)]
    if sorted(order) != list(range(nodes)):
        raise RendezvousTimeout(f"rendezvous: unexpected node indexes {sorted(addresses)} for {nodes} nodes")
    return {
        "cluster": {"worker": [addresses[i] for i in order]},
        "task": {"type": "worker", "index": order.index(index)},
    }


def ensure_tf_config(checkpoint_uri: str) -> bool:
    """Set TF_CONFIG from the Batch MNP rendezvous unless it is already set; True when it was set here."""
    if os.environ.get("TF_CONFIG"):
        return False
    config = batch_tf_config(checkpoint_uri)
    if config is None:
        return False
    os.environ["TF_CONFIG"] = orjson.dumps(config).decode()
    log.info("TF_CONFIG from rendezvous: %s", os.environ["TF_CONFIG"])
    return True
