"""crn_tf.training.data: a run discovers, probes and resolves its data once; epochs read the scan's result."""
import collections

import numpy as np
import pytest
from conftest import count_calls, data_path_counters, write_city

import crn_tf.data.readers
from crn_tf.data import make_dataset, scan_dataset
from crn_tf.data.readers import read_label
from crn_tf.labels import CITYSCAPES
from crn_tf.training.data import EpochData

SIZE = (32, 64)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return write_city(tmp_path_factory, 3, 0, SIZE, seed=5)


def test_epochs_and_samples_read_the_scan_without_probing_again(city, monkeypatch):
    probes_of_one_scan = collections.Counter()
    count_calls(monkeypatch, probes_of_one_scan, crn_tf.data.readers, "_probe_cached", "probe")
    scan_dataset(city, label_set=CITYSCAPES)
    monkeypatch.undo()

    counts = data_path_counters(monkeypatch)
    data = EpochData(city, SIZE, "cityscapes", global_batch_size=1, seed=1)
    assert data.label_set is CITYSCAPES and data.scanned.sizes == (SIZE,) * 3
    after_scan = dict(counts)
    assert after_scan == {"scan_dataset": 1, "discover": 1, "resolve_label_set": 1,
                          "probe": probes_of_one_scan["probe"]}
    for epoch in range(2):
        batches = list(data.dataset(epoch).take(data.steps_per_epoch))
        assert len(batches) == 3
    images, layouts, classes = data.samples(2)
    assert images.shape == (2,) + SIZE + (3,) and layouts.shape == (2,) + SIZE + (20,)
    assert dict(counts) == after_scan  # nothing discovered, probed or resolved after the scan
    # The class ids come with the one-hot (nothing undoes it): equal to the labels as read from disk.
    assert classes.dtype == np.uint8 and classes.shape == (2,) + SIZE
    for example, ids, layout in zip(data.examples[:2], classes, layouts):
        np.testing.assert_array_equal(ids, read_label(example.label_path, CITYSCAPES))
        np.testing.assert_array_equal(layout.argmax(-1), np.where(ids == 255, 19, ids))


def test_an_epoch_reads_its_order_and_equals_the_pipeline_on_those_examples(city):
    data = EpochData(city, SIZE, CITYSCAPES, global_batch_size=1, seed=7)
    order = data.order(1)
    assert sorted(e.stem for e in order) == sorted(e.stem for e in data.examples)
    epoch = [b[0].numpy()[0] for b in data.dataset(1).take(3)]
    direct = [b[0].numpy()[0] for b in make_dataset(order, size=SIZE, scan=False)]
    for a, b in zip(epoch, direct):
        np.testing.assert_array_equal(a, b)

