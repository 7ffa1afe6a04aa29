"""The model-loading layer shared by every function and the training job."""
