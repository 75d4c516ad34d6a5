"""Atomic writes (pygrad/_files.py) and Module.save through them: a write
that fails for any reason (an exception, a full disk, a file-size limit, a
read-only directory, the process killed) leaves the old file whole and no
temporary file behind it (but the killed process's, which nothing can remove).

The failures are real where the machine allows: RLIMIT_FSIZE in a child
process, a small tmpfs and a read-only one mounted in a private mount
namespace (`unshare -m`, as root; the tests skip where it is refused).
"""
import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

import pygrad
from pygrad._files import atomic_write

POSIX = os.name == "posix"


def listing(directory):
    return sorted(os.listdir(directory))


def run_python(code, *, via=(), check_output="ok"):
    """Run code in a fresh interpreter (optionally under the command via);
    its last line of output must be check_output."""
    result = subprocess.run([*via, sys.executable, "-c", textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith(check_output), \
        f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


# ---- the helper ---------------------------------------------------------------

def test_a_new_file_appears_whole_with_open_s_permissions(tmp_path):
    path = tmp_path / "new.bin"
    with atomic_write(path) as f:
        f.write(b"abc")
        assert listing(tmp_path) != ["new.bin"]  # not there until the block ends
    assert path.read_bytes() == b"abc" and listing(tmp_path) == ["new.bin"]
    if POSIX:
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as open() makes it


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt, MemoryError])
def test_an_exception_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "f"
    path.write_bytes(b"old contents")
    with pytest.raises(error):
        with atomic_write(path) as f:
            f.write(b"new, half written")
            raise error()
    assert path.read_bytes() == b"old contents" and listing(tmp_path) == ["f"]
    with pytest.raises(Boom):  # and where there was no file, there is none
        with atomic_write(tmp_path / "g") as f:
            raise Boom()
    assert listing(tmp_path) == ["f"]


@pytest.mark.skipif(not POSIX, reason="permission bits and symbolic links are POSIX's")
def test_the_old_file_s_permissions_and_a_symbolic_link_are_kept(tmp_path):
    real = tmp_path / "real"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic_write(link) as f:
        f.write(b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert listing(tmp_path) == ["link", "real"]


def test_a_missing_directory_is_named_as_the_file_asked_for(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        with atomic_write(tmp_path / "absent" / "f") as f:
            f.write(b"x")
    assert info.value.filename == str(tmp_path / "absent" / "f")


def test_a_directory_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(IsADirectoryError):
        with atomic_write(tmp_path) as f:
            f.write(b"x")
    assert listing(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_device_is_written_in_place_not_replaced():
    with atomic_write("/dev/null") as f:
        f.write(b"discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_the_data_is_synced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd):
        events.append("fsync " + ("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        fsync(fd)

    def spy_replace(a, b):
        events.append("replace")
        replace(a, b)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    with atomic_write(tmp_path / "f") as f:
        f.write(b"x")
    want = ["fsync file", "replace"] + (["fsync dir"] if POSIX else [])
    if sys.platform == "darwin":  # F_FULLFSYNC instead of fsync for the file
        want.remove("fsync file")
    assert events == want


@pytest.mark.skipif(not POSIX, reason="SIGKILL")
def test_a_process_killed_while_writing_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "ck"
    path.write_bytes(b"old" * 1000)
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pygrad._files import atomic_write
            with atomic_write({str(path)!r}) as f:
                f.write(b"new" * 500)
                f.flush()
                print("half", flush=True)
                time.sleep(60)
            """)], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().strip() == "half"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert path.read_bytes() == b"old" * 1000


# ---- Module.save through it, with real failures ------------------------------

def big_model():
    return pygrad.MLP(3, [200, 200, 1])  # 41,001 parameters: a 328 KB file


def test_save_writes_through_a_temporary_and_a_failing_model_leaves_the_old_file(tmp_path):
    class Broken(pygrad.Module):
        def parameters(self):
            raise RuntimeError("no parameters today")

    path = tmp_path / "ck"
    pygrad.MLP(3, [4, 1]).save(path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="no parameters today"):
        Broken().save(path)
    assert path.read_bytes() == before and listing(tmp_path) == ["ck"]


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_file_size_limit_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "ck"
    run_python(f"""
        import os, resource, signal
        import pygrad
        path = {str(path)!r}
        pygrad.MLP(3, [4, 1]).save(path)
        before = open(path, "rb").read()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            pygrad.MLP(3, [200, 200, 1]).save(path)
        except OSError as e:
            assert e.errno == {errno.EFBIG}, e
        else:
            raise AssertionError("the save went through")
        assert open(path, "rb").read() == before
        assert os.listdir(os.path.dirname(path)) == ["ck"], os.listdir(os.path.dirname(path))
        print("ok")
        """)


def in_a_private_tmpfs(tmp_path, options, code):
    """Run code with `mnt` the path of a new tmpfs (mounted with options)
    that only the child process sees, or skip where that is not allowed."""
    unshare = shutil.which("unshare")
    if not POSIX or unshare is None or os.geteuid() != 0:
        pytest.skip("a private tmpfs needs root and unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    probe = subprocess.run([unshare, "-m", "sh", "-c", f"mount -t tmpfs -o {options} tmpfs {mnt}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    script = f"import os, errno, pygrad\nmnt = {str(mnt)!r}\n" + textwrap.dedent(code)
    shell = f'mount -t tmpfs -o {options} tmpfs "$1" && shift && exec "$@"'
    return run_python(script, via=(unshare, "-m", "sh", "-c", shell, "sh", str(mnt)))


def test_a_full_disk_leaves_the_old_file_whole(tmp_path):
    in_a_private_tmpfs(tmp_path, "size=256k", """
        path = os.path.join(mnt, "ck")
        pygrad.MLP(3, [4, 1]).save(path)
        before = open(path, "rb").read()
        try:
            pygrad.MLP(3, [200, 200, 1]).save(path)  # 328 KB into 256 KB
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        else:
            raise AssertionError("the save went through")
        assert open(path, "rb").read() == before
        assert os.listdir(mnt) == ["ck"], os.listdir(mnt)
        pygrad.MLP(3, [8, 1]).save(path)  # and once there is room, saving works again
        assert open(path, "rb").read() != before
        print("ok")
        """)


def test_a_read_only_directory_leaves_the_old_file_whole(tmp_path):
    if POSIX and os.geteuid() != 0:  # an ordinary user: a directory without write permission
        path = tmp_path / "ck"
        pygrad.MLP(3, [4, 1]).save(path)
        before = path.read_bytes()
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(PermissionError):
                pygrad.MLP(3, [4, 1]).save(path)
        finally:
            tmp_path.chmod(0o755)
        assert path.read_bytes() == before and listing(tmp_path) == ["ck"]
        return
    in_a_private_tmpfs(tmp_path, "size=256k", """
        import subprocess
        path = os.path.join(mnt, "ck")
        pygrad.MLP(3, [4, 1]).save(path)
        before = open(path, "rb").read()
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
        try:
            pygrad.MLP(3, [4, 1]).save(path)
        except OSError as e:
            assert e.errno == errno.EROFS, e
        else:
            raise AssertionError("the save went through")
        assert open(path, "rb").read() == before and os.listdir(mnt) == ["ck"]
        print("ok")
        """)
