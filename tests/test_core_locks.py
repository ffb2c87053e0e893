"""crn_tf.core.locks: one process per directory, the holder named, stale locks taken over."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from crn_tf.core.locks import (
    LOCK_NAME,
    DirectoryLock,
    LockError,
    _process_start,
    read_holder,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_lock(directory, pid, host=None, process_start="auto", command="train.py --run-dir x"):
    os.makedirs(directory, exist_ok=True)
    record = {"host": host or socket.gethostname(), "pid": pid, "started": "2026-01-01 00:00:00",
              "command": command, "token": "t", "process_start": _process_start(pid) if process_start == "auto"
              else process_start}
    (directory / LOCK_NAME).write_text(json.dumps(record))


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


TRY_LOCK = textwrap.dedent("""
    import sys
    from crn_tf.core.locks import DirectoryLock, LockError
    try:
        DirectoryLock(sys.argv[1]).acquire()
    except LockError as error:
        print(error)
""")


def test_a_held_lock_refuses_another_process_nests_in_its_own_and_is_gone_after_release(tmp_path):
    directory = tmp_path / "run"
    with DirectoryLock(directory):
        holder = read_holder(directory / LOCK_NAME)
        assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
        assert holder.process_start == _process_start(os.getpid())
        refused = subprocess.run([sys.executable, "-c", TRY_LOCK, str(directory)], capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=ROOT), timeout=60).stdout.strip()
        assert refused.startswith(f"{directory} is in use by another process: pid {os.getpid()} on "
                                  f"{socket.gethostname()} since ") and "\n" not in refused
        with DirectoryLock(directory):  # this process again (train.py's CLI, then train())
            pass
        assert read_holder(directory / LOCK_NAME) == holder  # the outer holder still has it
    assert not directory.exists()  # made by the lock and left empty: removed again
    (tmp_path / "kept").mkdir()
    with DirectoryLock(tmp_path / "kept"):
        (tmp_path / "kept" / "output.txt").write_text("x")
    assert os.listdir(tmp_path / "kept") == ["output.txt"]


def test_a_live_process_on_this_host_keeps_its_lock_and_a_dead_ones_is_taken_over(tmp_path, sleeper):
    write_lock(tmp_path, sleeper.pid)
    with pytest.raises(LockError, match=f"pid {sleeper.pid} on {socket.gethostname()} since 2026-01-01 00:00:00 "
                                        r"\(train.py --run-dir x\); wait for it to finish"):
        DirectoryLock(tmp_path).acquire()
    sleeper.kill()
    sleeper.wait()
    warnings = []
    with DirectoryLock(tmp_path, warn=warnings.append):
        assert read_holder(tmp_path / LOCK_NAME).pid == os.getpid()
    assert len(warnings) == 1
    assert f"locked by pid {sleeper.pid}" in warnings[0] and "no longer running; taking the lock over" in warnings[0]
    assert os.listdir(tmp_path) == []


def test_zombies_reused_pids_and_unreadable_locks_are_stale(tmp_path, monkeypatch):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    write_lock(tmp_path, zombie.pid)
    warnings = []
    DirectoryLock(tmp_path, warn=warnings.append).acquire().release()
    zombie.wait()
    write_lock(tmp_path, os.getpid(), process_start=_process_start(os.getpid()) + 1)  # our pid, reused
    DirectoryLock(tmp_path, warn=warnings.append).acquire().release()
    (tmp_path / LOCK_NAME).write_text('{"host": "')  # a process killed while writing it
    monkeypatch.setattr(DirectoryLock, "STALE_UNREADABLE_SECONDS", 0.2)
    DirectoryLock(tmp_path, warn=warnings.append).acquire().release()
    assert len(warnings) == 3 and "an unreadable lock file" in warnings[2]


def test_another_hosts_lock_is_refused_with_the_file_to_delete(tmp_path):
    write_lock(tmp_path, 1, host="elsewhere.example", process_start=None)
    with pytest.raises(LockError, match=f"pid 1 on elsewhere.example .*if that process is gone, delete "
                                        f"{tmp_path / LOCK_NAME}"):
        DirectoryLock(tmp_path).acquire()
    assert DirectoryLock(tmp_path, enabled=False).acquire().holder is None  # non-chief workers take none


RACER = textwrap.dedent("""
    import sys, time
    from crn_tf.core.locks import DirectoryLock, LockError
    while time.time() < float(sys.argv[2]):
        pass
    try:
        with DirectoryLock(sys.argv[1]):
            print("got it", flush=True)
            time.sleep(1.5)
    except LockError:
        print("refused", flush=True)
""")


def test_of_processes_starting_together_exactly_one_gets_the_lock(tmp_path):
    start = time.time() + 1.5
    env = dict(os.environ, PYTHONPATH=ROOT)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "out"), str(start)], env=env,
                               stdout=subprocess.PIPE, text=True) for _ in range(4)]
    results = sorted(racer.communicate(timeout=60)[0].strip() for racer in racers)
    assert results == ["got it", "refused", "refused", "refused"]


def test_prepare_and_evaluate_refuse_an_output_directory_another_process_writes(tmp_path, sleeper, capsys):
    from crn_tf.data.prepare import main as prepare_main
    from crn_tf.evaluate.__main__ import main as evaluate_main

    for out in ("prepared", "evaluated"):
        write_lock(tmp_path / out, sleeper.pid)
    assert prepare_main(["--source", str(tmp_path / "data"), "--out", str(tmp_path / "prepared")]) == 5
    assert f"error: {tmp_path / 'prepared'} is in use by another process: pid {sleeper.pid}" in capsys.readouterr().err
    assert evaluate_main([str(tmp_path / "data"), "--synthesized", str(tmp_path), "--inception", "keras",
                          "--out", str(tmp_path / "evaluated")]) == 5
    assert f"crn-evaluate: error: {tmp_path / 'evaluated'} is in use by another process: pid {sleeper.pid}" in \
        capsys.readouterr().err
    assert os.listdir(tmp_path / "prepared") == [LOCK_NAME]  # refused before writing anything
