"""Parity of maas_models.preprocessing (numpy, no TensorFlow) with Keras' own preprocessing layers.

Token ids, lookups and hash buckets must equal Keras exactly; numeric layers match to float32
rounding; a model cut by split_model gives Keras' outputs within 1e-5.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from maas_models.errors import InvalidInput, UnsupportedModel  # noqa: E402
from maas_models.preprocessing import Preprocessing, step_from_state  # noqa: E402
from maas_models.preprocessing.keras_state import export_layer  # noqa: E402
from maas_models.preprocessing.split import split_model  # noqa: E402

TRICKY = [
    "Hello, World!",
    "The movie was GOOD... really good!!!",
    "ÄÖÜ Straße ΣΑΣ İstanbul",  # tf.strings.lower lowercases ASCII only
    "e\u0301cole naïve café",  # a combining acute accent, precomposed letters
    "!!!???...---",  # only punctuation
    "",
    " ",
    "\t\n\r\v\f",
    "a\u00a0b c\u3000d e\u2028f",  # NBSP, ideographic space, line separator: not split
    "x\x1cy",  # str.split() would split on the file separator; TF does not
    "日本語のテキスト と 中文",
    "emoji 😀 👍🏽 family 👨‍👩‍👧",
    "don't stop-believing (ok?) [UNK] token",
    "C++ & C# <tags> {braces} a_b a`b a~b a|b a^b a@b a$b a%b",
    "«quoted» \u201csmart\u201d \u2018single\u2019 ¿qué? ¡sí! …",
    "ﬁ ligature Ⅻ roman \uff26\uff35\uff2c\uff2c width",  # full-width letters: not ASCII, not lowered
    "  leading   and   trailing   ",
    "good bad good bad good unknownword another_unknown",
    " ".join(["word"] * 300) + " end",  # longer than output_sequence_length
    "ALLCAPS Words MiXeD",
]
TRAIN = [
    "the movie was good",
    "good acting and a good plot",
    "bad film, bad acting!",
    "Straße und café",
    "日本語のテキスト",
    "really really good",
    "a bad, bad plot",
]


def _keras_strings(values):
    return np.asarray(values, dtype=str)


TV_CONFIGS = [
    {"standardize": "lower_and_strip_punctuation", "split": "whitespace", "output_sequence_length": 8},
    {"standardize": "lower", "split": "whitespace", "ngrams": 2, "output_sequence_length": 12},
    {
        "standardize": "strip_punctuation",
        "split": "whitespace",
        "ngrams": (1, 3),
        "output_sequence_length": 10,
    },
    {"standardize": None, "split": "whitespace", "output_sequence_length": 6},
    {"standardize": "lower_and_strip_punctuation", "split": "character", "output_sequence_length": 40},
    {"standardize": "lower_and_strip_punctuation", "split": "whitespace", "output_sequence_length": None},
    {"standardize": "lower_and_strip_punctuation", "split": "whitespace", "output_mode": "multi_hot"},
    {
        "standardize": "lower_and_strip_punctuation",
        "split": "whitespace",
        "output_mode": "count",
        "ngrams": 2,
    },
    {"standardize": "lower_and_strip_punctuation", "split": "whitespace", "output_mode": "tf_idf"},
    {
        "standardize": "lower",
        "split": "whitespace",
        "output_mode": "multi_hot",
        "pad_to_max_tokens": True,
        "max_tokens": 40,
    },
]


@pytest.mark.parametrize("config", TV_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_text_vectorization_ids_equal_keras(config):
    layer = keras.layers.TextVectorization(**{"max_tokens": 30, **config})
    layer.adapt(TRAIN)
    step = step_from_state(export_layer(layer))
    for shape in ((-1,), (-1, 1)):
        batch = np.asarray(TRICKY, dtype=object).reshape(shape)
        want = np.asarray(layer(_keras_strings(TRICKY).reshape(shape)))
        got = step(batch)
        assert got.shape == want.shape
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_text_vectorization_split_none_and_bytes():
    layer = keras.layers.TextVectorization(
        split=None, output_sequence_length=None, vocabulary=["good", "bad"]
    )
    step = step_from_state(export_layer(layer))
    batch = np.asarray([["GOOD!"], ["bad"], ["other"], [""]], dtype=object)
    np.testing.assert_array_equal(step(batch), np.asarray(layer(_keras_strings(batch))))
    as_bytes = np.asarray([[s.encode()] for s in batch[:, 0]], dtype=object)  # binary / base64 payloads
    np.testing.assert_array_equal(step(as_bytes), step(batch))


def test_punctuation_set_is_keras_regex():
    """The strip set is exactly what tf.strings.regex_replace removes with Keras' RE2 class."""
    import tensorflow as tf
    from maas_models.preprocessing.text import KERAS_PUNCTUATION, standardize

    every = "".join(chr(c) for c in range(1, 0x3000) if not (0xD800 <= c < 0xE000))
    removed = (
        tf.strings.regex_replace(every, r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']', "").numpy().decode()
    )
    assert standardize(every, "strip_punctuation") == removed
    assert sorted(KERAS_PUNCTUATION) == sorted(set(every) - set(removed))
    lowered = tf.strings.lower(every).numpy().decode()
    assert standardize(every, "lower") == lowered


LOOKUP_CONFIGS = [
    {},
    {"num_oov_indices": 0},
    {"num_oov_indices": 3},
    {"num_oov_indices": 3, "salt": 1234},
    {"mask_token": ""},
    {"mask_token": "MASK", "num_oov_indices": 2},
    {"output_mode": "one_hot"},
    {"output_mode": "multi_hot", "mask_token": ""},
    {"output_mode": "count", "num_oov_indices": 2},
    {"output_mode": "tf_idf", "idf_weights": [0.5, 1.0, 2.0, 3.0]},
]
VOCAB = ["DE", "FR", "Ümlaut", "日本"]


@pytest.mark.parametrize("config", LOOKUP_CONFIGS, ids=str)
def test_string_lookup_equals_keras(config):
    layer = keras.layers.StringLookup(vocabulary=VOCAB, **config)
    step = step_from_state(export_layer(layer))
    known = ["DE", "FR", "Ümlaut", "日本"]
    unknown = ["US", "de", "", "MASK", "\u00e9", "x" * 1000]
    values = known + ([] if config.get("num_oov_indices") == 0 else unknown)
    if config.get("mask_token") is None:
        values = [v for v in values if v != "MASK"]
    batch = np.asarray(values, dtype=object).reshape(-1, 1)
    want = np.asarray(layer(_keras_strings(batch)))
    got = step(batch)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_string_lookup_without_oov_refuses_unknown():
    layer = keras.layers.StringLookup(vocabulary=VOCAB, num_oov_indices=0, name="country_lookup")
    step = step_from_state(export_layer(layer))
    with pytest.raises(InvalidInput, match="no OOV bucket"):
        step(np.asarray([["US"]], dtype=object))


def test_string_lookup_invert_equals_keras():
    layer = keras.layers.StringLookup(vocabulary=VOCAB, invert=True, mask_token="")
    step = step_from_state(export_layer(layer))
    ids = np.asarray([[0], [1], [2], [5], [9], [-1]], dtype=np.int64)
    want = [v.decode() for v in np.asarray(layer(ids)).reshape(-1)]
    assert step(ids).reshape(-1).tolist() == want


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"num_oov_indices": 3},
        {"num_oov_indices": 3, "oov_method": "farmhash"},
        {"num_oov_indices": 2, "oov_method": "farmhash", "salt": 7},
        {"mask_token": 0},
        {"output_mode": "one_hot"},
    ],
    ids=str,
)
def test_integer_lookup_equals_keras(config):
    layer = keras.layers.IntegerLookup(vocabulary=[3, 7, 11, 1000], **config)
    step = step_from_state(export_layer(layer))
    batch = np.asarray([[3], [7], [11], [1000], [4], [-9], [123456789], [0]], dtype=np.int64)
    np.testing.assert_array_equal(step(batch), np.asarray(layer(batch)))


def test_integer_lookup_invert_equals_keras():
    layer = keras.layers.IntegerLookup(vocabulary=[3, 7, 11], invert=True)
    step = step_from_state(export_layer(layer))
    ids = np.asarray([[0], [1], [2], [3], [8]], dtype=np.int64)
    np.testing.assert_array_equal(step(ids), np.asarray(layer(ids)))


@pytest.mark.parametrize(
    "config",
    [
        {"num_bins": 7},
        {"num_bins": 7, "salt": 133},
        {"num_bins": 5, "salt": [133, 137]},
        {"num_bins": 4, "mask_value": "MASK"},
        {"num_bins": 6, "output_mode": "one_hot"},
        {"num_bins": 3, "output_mode": "multi_hot"},
        {"num_bins": 1 << 40},
    ],
    ids=str,
)
def test_hashing_strings_equal_keras(config):
    layer = keras.layers.Hashing(**config)
    step = step_from_state(export_layer(layer))
    batch = np.asarray([[t] for t in [*TRICKY, "MASK"]], dtype=object)
    want = np.asarray(layer(_keras_strings(batch)))
    np.testing.assert_array_equal(step(batch), want)


def test_hashing_integers_and_floats_equal_keras():
    for values, cfg in (
        (np.asarray([[0], [1], [-5], [2**40]], dtype=np.int64), {"num_bins": 9}),
        (np.asarray([[0.0], [1.7], [-5.2]], dtype=np.float32), {"num_bins": 9, "salt": 3}),
        (np.asarray([[1], [2], [3]], dtype=np.int64), {"num_bins": 4, "mask_value": 2}),
    ):
        layer = keras.layers.Hashing(**cfg)
        step = step_from_state(export_layer(layer))
        np.testing.assert_array_equal(step(values), np.asarray(layer(values)))


def test_numeric_layers_match_keras():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 5.0, size=(64, 3)).astype(np.float32)
    norm = keras.layers.Normalization()
    norm.adapt(data)
    inv = keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.0, 9.0], invert=True)
    disc = keras.layers.Discretization(bin_boundaries=[-1.0, 0.0, 0.1, 2.5])
    disc_hot = keras.layers.Discretization(bin_boundaries=[-1.0, 0.0, 0.1, 2.5], output_mode="one_hot")
    enc = keras.layers.CategoryEncoding(num_tokens=6, output_mode="multi_hot")
    enc_count = keras.layers.CategoryEncoding(num_tokens=6, output_mode="count")
    enc_one = keras.layers.CategoryEncoding(num_tokens=6, output_mode="one_hot")
    resc = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)
    probe = np.concatenate([data, np.asarray([[0.1, -1.0, 2.5], [0.09999999, 1e6, -1e6]], np.float32)])
    ints = rng.integers(0, 6, size=(32, 4))
    pixels = rng.integers(0, 256, size=(4, 8, 8, 3)).astype(np.uint8)
    for layer, x in (
        (norm, probe),
        (inv, probe),
        (disc, probe),
        (disc_hot, probe[:, :1]),
        (enc, ints),
        (enc_count, ints),
        (enc_one, ints[:, :1]),
        (resc, pixels),
    ):
        want = np.asarray(layer(x))  # builds layers given mean/variance in the constructor
        got = step_from_state(export_layer(layer))(x)
        assert got.shape == want.shape and got.dtype == want.dtype, layer.name
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=layer.name)


def test_custom_standardize_is_refused_naming_the_layer():
    layer = keras.layers.TextVectorization(standardize=lambda x: x, vocabulary=["a"], name="my_tokenizer")
    with pytest.raises(UnsupportedModel, match=r"'my_tokenizer'.*custom standardize"):
        export_layer(layer)


def _sentiment_model():
    tv = keras.layers.TextVectorization(max_tokens=40, output_sequence_length=10, name="tokens")
    tv.adapt(TRAIN)
    text = keras.Input(shape=(1,), dtype="string", name="review")
    country = keras.Input(shape=(1,), dtype="string", name="country")
    income = keras.Input(shape=(1,), name="income")
    x = keras.layers.Embedding(40, 8, mask_zero=True)(tv(text))
    x = keras.layers.GlobalAveragePooling1D()(x)
    c = keras.layers.StringLookup(vocabulary=VOCAB, output_mode="one_hot", name="country_ids")(country)
    n = keras.layers.Normalization(mean=50000.0, variance=1e8, name="income_norm")(income)
    h = keras.layers.Concatenate()([x, c, n])
    out = keras.layers.Dense(2, activation="softmax", name="probs")(h)
    return keras.Model([text, country, income], out)


def test_split_model_reproduces_keras_outputs():
    model = _sentiment_model()
    split = split_model(model)
    assert [c["input"] for c in split.chains] == ["review", "country"]
    assert [s.name for s in split.model_inputs] == ["tokens", "country_ids", "income"]
    manifest = {
        "inputs": [s.to_manifest() for s in split.raw_inputs],
        "outputs": [{"name": "probs", "dtype": "float32", "shape": [None, 2]}],
        "preprocessing": split.manifest_block(),
    }
    pre = Preprocessing.from_manifest(manifest)
    assert pre is not None
    n = len(TRICKY)
    raw = {
        "review": np.asarray(TRICKY, dtype=object).reshape(-1, 1),
        "country": np.asarray([VOCAB[i % 4] if i % 3 else "ZZ" for i in range(n)], dtype=object).reshape(
            -1, 1
        ),
        "income": np.linspace(0, 1e5, n, dtype=np.float32).reshape(-1, 1),
    }
    want = np.asarray(model([_keras_strings(raw["review"]), _keras_strings(raw["country"]), raw["income"]]))
    got = np.asarray(split.core(pre.apply(raw)))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert split.core.output_names == ["probs"]
