"""The precision table (`crn_tf.core.precision`): names, policies, the views, and what reads them."""
import numpy as np
import pytest

from crn_tf.core.precision import (
    BENCH_PRECISIONS,
    INFERENCE_POLICIES,
    PRECISION_POLICIES,
    PRECISION_TABLE,
    TRAINING_PRECISIONS,
    get_precision,
)


def test_names_and_aliases():
    assert get_precision("off") is get_precision("fp32")  # float32: off in train/demo, fp32 in the benchmark
    assert get_precision("fp32").names == ("fp32", "off") and get_precision("bf16").names == ("bf16",)
    assert [p.compute_dtype for p in PRECISION_TABLE] == ["float32", "bfloat16", "float16"]
    with pytest.raises(ValueError, match=r"unknown precision 'int8'; choose one of \['fp32', 'off', 'bf16', 'fp16'\]"):
        get_precision("int8")


def test_views_keep_their_entries():
    assert PRECISION_POLICIES == {"off": None, "fp32": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
    assert INFERENCE_POLICIES == {"off": None, "fp32": None, "bf16": "bfloat16", "fp16": "float16"}


def test_command_line_values_stay_as_they_were():
    from crn_tf.demo import build_parser as demo_parser
    from crn_tf.training.options import build_parser as train_parser

    def choices(parser, flag):
        return tuple(next(a for a in parser._actions if flag in a.option_strings).choices)

    assert TRAINING_PRECISIONS == choices(train_parser(), "--mixed-precision") == ("off", "bf16", "fp16")
    assert choices(demo_parser(), "--mixed-precision") == ("off", "bf16")
    assert BENCH_PRECISIONS == ("fp32", "bf16", "fp16")
    assert all(get_precision(name) for name in ("off", "bf16"))  # every demo value is a row


@pytest.mark.parametrize("precision", PRECISION_TABLE, ids=lambda p: p.name)
def test_inference_policy_gives_the_training_policys_numbers(precision, rng):
    """Kernels stored in the compute dtype compute what the mixed policy's per-call cast computes."""
    from crn_tf.nn.model import CRN

    def build(policy):
        model = CRN(output_size=(16, 32), widths=(8, 6, 5), num_images=2, **({"dtype": policy} if policy else {}))
        model.build()
        return model

    reference = build(None)
    trained, inferred = build(precision.training_policy), build(precision.inference_policy)
    for model in (trained, inferred):
        model.set_weights(reference.get_weights())
    assert trained.compute_dtype == inferred.compute_dtype == precision.compute_dtype
    layout = np.eye(20, dtype=np.float32)[rng.integers(0, 20, (2, 16, 32))]
    np.testing.assert_array_equal(trained(layout).numpy(), inferred(layout).numpy())
