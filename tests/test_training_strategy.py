"""Training across processes and devices: kill and resume, MirroredStrategy, MultiWorkerMirroredStrategy.

Each case runs in subprocesses: logical CPU devices and TF_CONFIG must be set before
TensorFlow starts, and a SIGKILL needs a process of its own.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--size", "32x64", "--width-multiplier", "1/128", "--vgg-weights", "random", "--preset", "512p",
        "--lr", "1e-3", "--log-every", "1"]

pytestmark = pytest.mark.slow


def env(**extra):
    environment = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    environment.pop("TF_CONFIG", None)
    environment.update(extra)
    return environment


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from crn_tf.synthetic import write_synthetic_city

    root = tmp_path_factory.mktemp("city")
    write_synthetic_city(root, 8, 2, size=(32, 64), seed=4, instances=False)
    return str(root)


# A driver that trains with crn_tf.training.run.train and dumps the final weights.
DRIVER = textwrap.dedent("""
    import sys
    import numpy as np
    from crn_tf.core.logs import cli_logging
    from crn_tf.training.options import parse_options
    from crn_tf.training.run import train
    out, argv = sys.argv[1], sys.argv[2:]
    with cli_logging():  # train.py's stderr: what the run logs, and the progress bar
        result = train(parse_options(argv))
    np.savez(out, *[v.numpy() for v in result.trainer.model.weights],
             iterations=result.trainer.optimizer.iterations.numpy())
    print("final step", result.fit.step, flush=True)
""")


def load_weights(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files) - 1)], int(data["iterations"])


def start_driver(tmp_path, name, argv, extra_env=None):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.Popen([sys.executable, str(driver), str(tmp_path / f"{name}.npz"), *argv],
                            env=env(**(extra_env or {})), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    try:
        _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-3000:]
    return err


def test_killed_run_resumes_at_its_checkpoint_exactly(city, tmp_path):
    """SIGKILL after a checkpoint; the restarted run says where it resumed and ends where an
    uninterrupted run of the same steps ends (same weights, same Adam iteration count)."""
    total = 11  # past the 8-step epoch: the resumed run also starts epoch 2's seeded order
    argv = [*TINY, "--data", city, "--save-every", "3", "--strategy", "default"]
    reference = start_driver(tmp_path, "reference", [*argv, "--run-dir", str(tmp_path / "straight"),
                                                     "--steps", str(total)])
    run_dir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *argv, "--run-dir", str(run_dir),
                                "--steps", "10000"], env=env(), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file = run_dir / "checkpoints" / "checkpoint"
    deadline = time.monotonic() + 240
    try:
        while not state_file.exists():
            assert process.poll() is None, "training exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    import tensorflow as tf

    saved_step = int(tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
                     .get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    assert 3 <= saved_step < total and saved_step % 3 == 0
    log = finish(start_driver(tmp_path, "resumed", [*argv, "--run-dir", str(run_dir), "--steps", str(total)]))
    assert f"resumed from step {saved_step} " in log
    finish(reference)
    resumed, resumed_iterations = load_weights(tmp_path / "resumed.npz")
    straight, straight_iterations = load_weights(tmp_path / "reference.npz")
    assert resumed_iterations == straight_iterations == total
    for a, b in zip(resumed, straight):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


MIRRORED = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from crn_tf.loss.perceptual import CRNLoss
    from crn_tf.training.loop import CRNTrainer
    from crn_tf.training.modules import build_model
    from crn_tf.loss.vgg import VGG19Features

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 32, 64, 3)).astype(np.float32)
    layouts = np.eye(20, dtype=np.float32)[rng.integers(0, 20, (2, 32, 64))]
    batches = tf.data.Dataset.from_tensors((images, layouts)).repeat()

    def one_step(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = build_model("256p", 19, size="32x64", width_multiplier=1 / 128, num_images=2)
            loss = CRNLoss(VGG19Features(None), diversity=True)
        trainer = CRNTrainer(model, loss, strategy, learning_rate=1e-3, global_batch_size=2)
        before = [v.numpy().copy() for v in model.weights]
        iterator = trainer.distribute(
            lambda ctx: batches.unbatch().batch(ctx.get_per_replica_batch_size(2)))
        value, terms = trainer.train_step(iterator)
        value2, _ = trainer.train_step(iterator)
        return before, [v.numpy() for v in model.weights], float(value), float(value2), trainer.trace_count

    default = one_step(tf.distribute.get_strategy())
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored = one_step(mirrored_strategy)
    changed = max(float(np.abs(a - b).max()) for a, b in zip(default[0], default[1]))
    same_start = max(float(np.abs(a - b).max()) for a, b in zip(default[0], mirrored[0]))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(default[1], mirrored[1]))
    print(json.dumps({"replicas": mirrored_strategy.num_replicas_in_sync, "changed": changed,
                      "same_start": same_start, "diff": diff, "losses": [default[2], mirrored[2], default[3], mirrored[3]],
                      "traces": [default[4], mirrored[4]]}))
""")


def test_mirrored_over_two_cpus_matches_one_device(tmp_path):
    """Two replicas with one example each update the weights as one device with both examples."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    process = subprocess.run([sys.executable, str(script)], env=env(), capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["traces"] == [1, 1]
    assert result["same_start"] == 0.0 and result["changed"] > 1e-4
    assert result["diff"] < 1e-5 * max(1.0, result["changed"] * 100), result
    np.testing.assert_allclose(result["losses"][0], result["losses"][1], rtol=1e-5)
    np.testing.assert_allclose(result["losses"][2], result["losses"][3], rtol=1e-5)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_together_and_agree(city, tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG: two processes on 127.0.0.1, identical final weights."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    run_dir = tmp_path / "run"
    argv = [*TINY, "--data", city, "--batch-size", "2", "--steps", "3", "--save-every", "2",
            "--run-dir", str(run_dir)]
    processes = [
        start_driver(tmp_path, f"worker{index}", argv, {"TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})})
        for index in range(2)
    ]
    try:
        logs = [finish(process) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert "MultiWorkerMirroredStrategy, 2 replicas" in logs[0]
    (chief, chief_iterations), (other, other_iterations) = (load_weights(tmp_path / f"worker{i}.npz") for i in range(2))
    assert chief_iterations == other_iterations == 3
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)
    # The chief owns the run directory; the other worker's scratch checkpoints are gone.
    assert (run_dir / "model" / "config.json").exists() and (run_dir / "options.json").exists()
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
                                                          "ckpt-3.data-00000-of-00001", "ckpt-3.index"]
