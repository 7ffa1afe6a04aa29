"""Scoring of SQS messages: ``schema`` (the message, validated), ``processor`` (stack rows per model,
one predict, split back, deliver to the results queue / reply_to), ``entry`` (Powertools
BatchProcessor with partial batch failures). Nothing here imports TensorFlow.
"""
