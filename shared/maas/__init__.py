"""maas: TensorFlow models served as a serverless service on AWS."""

__version__ = "0.1.0"
