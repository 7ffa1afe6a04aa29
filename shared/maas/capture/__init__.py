"""Opt-in data capture of sampled requests and responses, ground-truth labels and live accuracy.

* ``maas.capture.writer``: what the predict function does for a sampled request (masked JSONL records,
  batched like the audit trail) — only for aliases whose record opts in (``maas models capture``).
* ``maas.capture.join``: ``maas models labels`` uploads and the join that reports live accuracy per
  version and per sensitive group.
"""
