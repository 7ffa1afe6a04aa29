"""Batch scoring of files dropped into S3: ``incoming/<model>[@<version|alias>]/<path>``.

Modules: ``keys`` (the key convention), ``io`` (ranged reads, all-or-nothing writes), ``formats`` (CSV,
JSON Lines, Parquet, .npy), ``runner`` (read -> predict -> write), ``job`` (one file, idempotency by
completion marker), ``fanout`` (large files over SQS chunk tasks), ``entry`` (Lambda event dispatch).
Nothing here imports TensorFlow.
"""
