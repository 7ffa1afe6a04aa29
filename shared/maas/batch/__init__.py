"""Batch scoring of files dropped into S3: ``incoming/<model>[@<version|alias>]/<path>``.

Modules: ``keys`` (the key convention), ``io`` (ranged reads, all-or-nothing writes), ``objects`` (small
JSON objects on S3), ``formats`` (CSV, JSON Lines, Parquet, .npy), ``runner`` (read -> predict ->
write), ``context`` (config, clients, the Job), ``job`` (what happens to one dropped file), ``publish``
(reports: the completion marker that makes a file idempotent), ``scoring`` (model resolution, a whole
file in one invocation), ``fanout`` (large files over SQS chunk tasks), ``entry`` (Lambda event
dispatch). Nothing here imports TensorFlow.
"""
