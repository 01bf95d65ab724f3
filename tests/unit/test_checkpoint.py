"""Publishing a trial's checkpoint directory: readers see the last complete one, whatever
moment a crash interrupted the publisher."""

import os
from pathlib import Path

from sweep.train.sessions import STATE_FILE, latest_published, publish_dir


def checkpoint(step: int):
    """A writer of a checkpoint directory, as the trial hands one to its session."""

    def write(directory: str) -> None:
        (Path(directory) / "shard.pt").write_bytes(b"x" * step)
        (Path(directory) / STATE_FILE).write_text(f'{{"step": {step}}}')

    return write


def test_publish_replaces_and_leaves_nothing_behind(tmp_path):
    dst = tmp_path / "ckpt" / "t0"
    assert latest_published(dst) is None
    publish_dir(checkpoint(1), dst)
    publish_dir(checkpoint(2), dst)
    assert latest_published(dst) == dst
    assert (dst / STATE_FILE).read_text() == '{"step": 2}'
    assert sorted(p.name for p in dst.parent.iterdir()) == ["t0"]


def test_crash_between_renames_keeps_the_previous_checkpoint(tmp_path):
    dst = tmp_path / "t0"
    publish_dir(checkpoint(1), dst)
    os.replace(dst, tmp_path / ".t0.old")  # killed after the first rename, before the second
    found = latest_published(dst)
    assert found == tmp_path / ".t0.old" and (found / STATE_FILE).read_text() == '{"step": 1}'
    publish_dir(checkpoint(2), dst)
    assert latest_published(dst) == dst
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".t0")) == []


def test_half_written_directory_is_never_read(tmp_path):
    dst = tmp_path / "t0"
    partial = tmp_path / ".t0.tmp-12345"  # a publisher killed mid-write
    partial.mkdir()
    (partial / "shard.pt").write_bytes(b"x")
    assert latest_published(dst) is None
    dst.mkdir()
    checkpoint(3)(str(dst))
    (dst / STATE_FILE).unlink()  # no loop state: not a checkpoint
    assert latest_published(dst) is None
    publish_dir(checkpoint(4), dst)
    assert latest_published(dst) == dst and not partial.exists()
