"""The one writer of every output: inputs, special files and symlinks are never replaced, and
the stale-temp sweep takes only the temp files that the writer made."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from danet.utils.atomic import TEMP_SUFFIX, atomic_write, remove_stale_temp_files, write_text
from danet.utils.outputs import check_output_names, command_scope, note_input, resolve_output
from danet.utils.readable import check_regular_file, check_torch_file


def test_an_input_of_the_running_command_is_refused_by_path_and_by_inode(tmp_path: Path) -> None:
    source = tmp_path / "config.json"
    source.write_text("{}")
    hard = tmp_path / "hard.json"
    os.link(source, hard)
    with command_scope():
        note_input(source)
        for target in (source, hard):
            with pytest.raises(ValueError, match="is an input of this command"):
                write_text(target, "{}")
        write_text(tmp_path / "other.json", "[]")  # a new name is fine
    assert source.read_text() == "{}"
    write_text(source, "[1]")  # outside a command, a library caller may save over its input
    assert source.read_text() == "[1]"


def test_a_fifo_is_written_in_place_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader waiting on the FIFO
    try:
        write_text(fifo, '{"miou": 1}')
        got = os.read(reader, 1000)
    finally:
        os.close(reader)
    assert got == b'{"miou": 1}' and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_fifo_nobody_reads_is_refused_not_blocked_on(tmp_path: Path) -> None:
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="no process reads") as err:
        write_text(fifo, "{}")
    assert err.value.filename == str(fifo) and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_character_device_is_written_in_place_not_replaced() -> None:
    before = os.stat("/dev/null")
    write_text("/dev/null", "{}")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_a_socket_is_refused(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ValueError, match="is a socket"):
            write_text(path, "{}")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_a_symlink_is_written_through_to_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "new.json")
    write_text(link, "new")
    write_text(dangling, "made")
    assert link.is_symlink() and real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600  # the file replaced keeps its permissions
    assert dangling.is_symlink() and (tmp_path / "new.json").read_text() == "made"


def test_a_symlink_to_stdout_writes_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    link = tmp_path / "out.json"
    link.symlink_to("/proc/self/fd/1")
    write_text(link, '{"a": 1}')
    atomic_write("/dev/stdout", lambda tmp: Path(tmp).write_bytes(b"\n[2]"))
    assert link.is_symlink() and capsys.readouterr().out == '{"a": 1}\n[2]'


def test_the_sweep_deletes_only_the_writers_own_temp_files(tmp_path: Path) -> None:
    own = tmp_path / f".a_label.png.k1ll3d00{TEMP_SUFFIX}"
    own.write_bytes(b"x")
    user = [tmp_path / ".notes_label.png.bak.tmp", tmp_path / ".a_label.png.mine.tmp"]
    for path in user:
        path.write_bytes(b"mine")
    assert remove_stale_temp_files(tmp_path, ("*_label.png",)) == [own]
    assert all(p.read_bytes() == b"mine" for p in user)


def test_a_write_leaves_no_temp_file_and_names_its_temp_files_uniquely(tmp_path: Path) -> None:
    seen: list[str] = []
    atomic_write(tmp_path / "x.png", lambda tmp: (seen.append(tmp), Path(tmp).write_bytes(b"1")))
    assert Path(seen[0]).name.endswith(TEMP_SUFFIX) and os.listdir(tmp_path) == ["x.png"]


def test_two_inputs_writing_one_name_are_refused_naming_both() -> None:
    check_output_names([("a_000000", "a.png"), ("b", "b.png")])
    with pytest.raises(ValueError, match="a.mp4 and a_000000.png would both write a_000000"):
        check_output_names([("a_000000", "a.mp4"), ("a_000000", "a_000000.png")])


def test_resolve_output_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        resolve_output(tmp_path)


def test_readers_refuse_a_fifo_or_device_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is a FIFO"):
        check_regular_file(fifo, "config")
    with pytest.raises(ValueError, match="/dev/zero: is a character device"):
        check_torch_file("/dev/zero")


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    import zipfile

    bomb = tmp_path / "checkpoint.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (8 << 20))
    with pytest.raises(ValueError, match=r"inflate to \d+ bytes"):
        check_torch_file(bomb)


def test_a_copy_of_dev_null_made_with_mknod_is_kept(tmp_path: Path) -> None:
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    before = os.lstat(node)
    atomic_write(node, lambda tmp: Path(tmp).write_bytes(b"onnx bytes"))
    after = os.lstat(node)
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino
    assert after.st_rdev == os.makedev(1, 3)


def test_a_binary_file_given_as_text_is_named(tmp_path: Path) -> None:
    from danet.utils.textfile import read_text_file

    path = tmp_path / "classes.txt"
    path.write_bytes(b"road\n\xff\xfe\x00sky")
    with pytest.raises(ValueError, match=r"classes.txt: not UTF-8 text \(byte 5 is 0xff\)"):
        read_text_file(path, "classes.txt")
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="fifo.txt: is a FIFO"):
        read_text_file(fifo)
