"""A model's own Keras preprocessing, run outside the graph with numpy and Pillow (no TensorFlow).

Keras models often start with layers LiteRT cannot run (TextVectorization, StringLookup,
IntegerLookup, Hashing: string tables and hashing) or that need the client's raw data (decoded
images). `maas models import` exports their state into the manifest (`keras_state.export_layer`,
needs TensorFlow) and converts the rest of the graph; serving rebuilds them from the manifest
(`Preprocessing.from_manifest`) and applies them where inputs are bound to the model.

Modules: text (TextVectorization), lookup (String/IntegerLookup), hashing (Hashing, OOV buckets),
numeric (Normalization, Discretization, CategoryEncoding, Rescaling), encoding (one_hot / multi_hot
/ count / tf_idf), image (Pillow decoding and resizing), pipeline (the manifest block).
"""

from maas_models.preprocessing.pipeline import Preprocessing, step_from_state

__all__ = ["Preprocessing", "step_from_state"]
