"""The disk cache of results that depend only on the shipped data and the code."""

from __future__ import annotations

import os
import pickle

import pytest

from b12pk.analysis import shipped
from b12pk.analysis.shipped import CACHE_ENV, KEEP, DataCache, cache_dir


class Counter:
    """A computation that counts its calls and returns its arguments."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return {"args": args, "value": [1.5, 2.5]}


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_new_process_reads_what_an_earlier_one_computed(folder):
    first = Counter()
    a = DataCache(first, "demo").get(3)
    second = Counter()   # a fresh cache object stands for a new process
    cache = DataCache(second, "demo")
    assert cache.get(3) == a and cache.hit
    assert (first.calls, second.calls) == (1, 0)


def test_each_call_gets_its_own_copy(folder):
    cache = DataCache(Counter(), "demo")
    cache.get()["value"].append(9)
    assert cache.get()["value"] == [1.5, 2.5]


def test_other_arguments_are_computed_and_kept_apart(folder):
    count = Counter()
    cache = DataCache(count, "demo")
    assert cache.get(1)["args"] == (1,)
    assert cache.get(2)["args"] == (2,)
    assert count.calls == 2
    assert cache.path(1) != cache.path(2)
    assert cache.path(1).is_file() and cache.path(2).is_file()


def test_a_changed_data_file_gives_another_file(folder, monkeypatch, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "model.toml").write_text("a = 1\n")
    monkeypatch.setattr(shipped, "data_dir", lambda: data)

    def fingerprint():
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                     for p in sorted(data.iterdir()))

    monkeypatch.setattr(shipped, "data_fingerprint", fingerprint)
    count = Counter()
    cache = DataCache(count, "demo")
    before = cache.path()
    cache.get()
    (data / "model.toml").write_text("a = 2\n")  # same size: the content counts
    os.utime(data / "model.toml", ns=(1, 1))
    assert cache.path() != before
    DataCache(count, "demo").get()
    assert count.calls == 2


def test_a_damaged_file_is_computed_again(folder):
    count = Counter()
    DataCache(count, "demo").get()
    path = DataCache(count, "demo").path()
    path.write_bytes(b"not a pickle")
    cache = DataCache(count, "demo")
    assert cache.get()["value"] == [1.5, 2.5] and not cache.hit
    assert count.calls == 2
    with open(path, "rb") as fh:       # and written again
        assert pickle.load(fh)["value"] == [1.5, 2.5]


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_file_others_can_change_is_not_read(folder):
    count = Counter()
    DataCache(count, "demo").get()
    path = DataCache(count, "demo").path()
    with open(path, "wb") as fh:
        pickle.dump({"value": "planted"}, fh)
    path.chmod(0o666)
    assert DataCache(count, "demo").get()["value"] == [1.5, 2.5]


def test_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "off")
    monkeypatch.chdir(tmp_path)
    assert cache_dir() is None
    count = Counter()
    DataCache(count, "demo").get()
    DataCache(count, "demo").get()
    assert count.calls == 2 and list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("the user's file\n")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))   # under a file: cannot exist
    assert DataCache(Counter(), "demo").get()["value"] == [1.5, 2.5]
    assert blocker.read_text() == "the user's file\n"


def test_only_the_newest_files_of_a_name_are_kept(folder):
    other = folder / "notes.txt"
    folder.mkdir(parents=True)
    other.write_text("not the cache's\n")
    cache = DataCache(Counter(), "demo")
    for k in range(KEEP + 3):
        cache.get(k)
        os.utime(cache.path(k), ns=(k * 10**9, k * 10**9))
    kept = sorted(p.name for p in folder.glob("demo-*.pickle"))
    assert len(kept) == KEEP
    assert cache.path(KEEP + 2).name in kept and cache.path(0).name not in kept
    assert other.read_text() == "not the cache's\n"


def test_names_are_checked():
    with pytest.raises(ValueError):
        DataCache(Counter(), "../escape")


def test_shipped_validation_is_read_back_the_same(folder):
    from b12pk.analysis import validate as v

    first = DataCache(v._SHIPPED._compute, "validation").get()   # computed, then written
    fresh = DataCache(lambda: pytest.fail("computed again"), "validation")
    assert fresh.path() == v._SHIPPED.path()
    again = fresh.get()
    assert again.table.equals(first.table)


def test_the_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "~/b12pk-cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "b12pk-cache"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "b12pk"


def test_no_home_folder_means_no_disk_cache(monkeypatch):
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(shipped.Path, "home", staticmethod(no_home))
    assert cache_dir() is None
    count = Counter()
    assert DataCache(count, "demo").get()["value"] == [1.5, 2.5] and count.calls == 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_link_under_the_files_name_is_not_followed(folder, tmp_path):
    count = Counter()
    cache = DataCache(count, "demo")
    path = cache.path()
    planted = tmp_path / "planted.pickle"
    with open(planted, "wb") as fh:
        pickle.dump({"value": "planted"}, fh)
    folder.mkdir(parents=True, mode=0o700)
    path.symlink_to(planted)
    assert cache.get()["value"] == [1.5, 2.5] and not cache.hit


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_folder_others_can_write_is_neither_read_nor_written(folder):
    count = Counter()
    DataCache(count, "demo").get()                   # written while the folder is private
    folder.chmod(0o777)
    try:
        cache = DataCache(count, "demo")
        cache.get()
        assert not cache.hit
        DataCache(count, "demo").get(5)
        assert count.calls == 3                      # recomputed, not read
        assert not DataCache(count, "demo").path(5).exists()   # and nothing written
    finally:
        folder.chmod(0o700)


def test_a_progress_closure_computes_without_entering_the_key(folder):
    cache = DataCache(lambda: pytest.fail("the constructor's computation"), "demo")
    assert cache.get(compute=lambda: {"value": 7})["value"] == 7
    again = DataCache(lambda: pytest.fail("computed again"), "demo")
    assert again.get()["value"] == 7 and again.hit


def test_an_editors_lock_file_in_the_package_does_not_break_the_key(folder, monkeypatch,
                                                                     tmp_path):
    pkg = tmp_path / "pkg" / "b12pk" / "analysis"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("x = 1\n")
    (pkg / ".#mod.py").symlink_to(tmp_path / "nowhere")   # dangling, as Emacs leaves it
    monkeypatch.setattr(shipped, "__file__", str(pkg / "shipped.py"))
    shipped._source_digest.cache_clear()
    try:
        assert DataCache(Counter(), "demo").path() is not None
    finally:
        shipped._source_digest.cache_clear()
