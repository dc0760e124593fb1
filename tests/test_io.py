"""b12pk.io: bounded reads, atomic outputs that never replace a user's files, no litter.

Table-driven per class: output folders, output files, stale temporaries, input files,
numbers in TOML, echoes in messages. The signal tests run the command line in a
subprocess and send SIGTERM / SIGINT / SIGKILL mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import b12pk
from b12pk import B12pkError, FileFormatError, ResourceError
from b12pk.cli import main
from b12pk.analysis.compare import load_patients
from b12pk.errors import OutputError
from b12pk.io import (atomic_output_dir, atomic_write_text, echo, output_dir_target,
                      read_bytes, read_toml, remove_stale_temporaries, sanitize_message)
from b12pk.io.output import HOST_TAG

SIGNED = {"b12pk_output": {"kind": "report", "version": "0.1.0", "files": ["a.csv"]}}
FAST = ["--regimen", "1000 mcg oral daily", "--patient", "healthy", "--days", "20"]


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its content (None for folders)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = b"link:" + os.readlink(p).encode()
        elif p.is_dir():
            out[rel] = None
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:  # a FIFO or device: never opened
            out[rel] = b"special:" + str(p.lstat().st_mode).encode()
    return out


def _signed(folder: Path, files: dict[str, str], run: dict | None = None) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    if run is not None:
        (folder / "run.json").write_text(json.dumps(run))
    return folder


# =======================================================================================
# Output folders: which existing paths may be replaced
# =======================================================================================

def _user_folder(tmp):
    return _signed(tmp / "out", {"notes.txt": "mine"})


def _user_hidden(tmp):
    return _signed(tmp / "out", {".secret": "mine"})


def _user_nested(tmp):
    return _signed(tmp / "out", {"sub/deep/data.csv": "mine"})


def _signed_plus_user(tmp):
    return _signed(tmp / "out", {"a.csv": "b12pk", "mine.txt": "mine"}, SIGNED)


def _signed_plus_user_nested(tmp):
    return _signed(tmp / "out", {"a.csv": "b12pk", "figures/mine.png": "mine"}, SIGNED)


def _fake_run_json(tmp):
    return _signed(tmp / "out", {"data.csv": "mine"}, {"something": "else"})


def _broken_run_json(tmp):
    folder = _signed(tmp / "out", {"data.csv": "mine"})
    (folder / "run.json").write_text("{not json")
    return folder


def _legacy_with_user_file(tmp):
    return _signed(tmp / "out", {"report.md": "old", "thesis.docx": "mine"},
                   {"b12pk_version": "0.1.0"})


def _run_json_is_a_list(tmp):
    return _signed(tmp / "out", {"x.csv": "mine"}, ["b12pk_output"])  # type: ignore[arg-type]


def _a_file(tmp):
    (tmp / "out").write_text("mine")
    return tmp / "out"


def _link_to_folder(tmp):
    real = _signed(tmp / "real", {"a.csv": "b12pk"}, SIGNED)
    (tmp / "out").symlink_to(real)
    return tmp / "out"


def _dangling_link(tmp):
    (tmp / "out").symlink_to(tmp / "nowhere")
    return tmp / "out"


def _fifo(tmp):
    os.mkfifo(tmp / "out")
    return tmp / "out"


REFUSED_FOLDERS = [
    ("user-folder", _user_folder, "holds files b12pk did not write"),
    ("user-hidden-file", _user_hidden, "'.secret'"),
    ("user-nested-file", _user_nested, "did not write"),
    ("signed-plus-user-file", _signed_plus_user, "'mine.txt'"),
    ("signed-plus-user-nested", _signed_plus_user_nested, "'figures'"),
    ("run-json-of-someone-else", _fake_run_json, "did not write"),
    ("run-json-broken", _broken_run_json, "did not write"),
    ("run-json-a-list", _run_json_is_a_list, "did not write"),
    ("legacy-with-user-file", _legacy_with_user_file, "'thesis.docx'"),
    ("a-file", _a_file, "exists and is not a folder"),
    ("link-to-folder", _link_to_folder, "symbolic link"),
    ("dangling-link", _dangling_link, "symbolic link"),
    ("fifo", _fifo, "exists and is not a folder"),
]


@pytest.mark.parametrize("make, needle", [c[1:] for c in REFUSED_FOLDERS],
                         ids=[c[0] for c in REFUSED_FOLDERS])
def test_output_folder_refused_and_untouched(tmp_path, make, needle):
    target = make(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(OutputError) as info:
        with atomic_output_dir(target) as tmp:
            (tmp / "a.csv").write_text("new")
    assert needle in str(info.value)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("text, needle", [
    ("", "path is empty"), ("   ", "path is empty"), (".", "current folder"),
    ("./", "current folder"), ("..", "current folder or holds it"), ("/", "root folder"),
    ("a/../.", "current folder"), ("nul\x00byte", "NUL character"),
    ("missing/parent/out", "does not exist"),
])
def test_output_folder_paths_refused(tmp_path, monkeypatch, text, needle):
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(OutputError) as info:
        output_dir_target(text)
    assert needle in str(info.value)
    assert _tree(tmp_path) == before


def test_output_folder_through_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(OutputError, match="does not exist"):
        output_dir_target(tmp_path / "file" / "out")


@pytest.mark.parametrize("make", [
    lambda tmp: _signed(tmp / "out", {}),  # empty folder
    lambda tmp: _signed(tmp / "out", {"a.csv": "b12pk"}, SIGNED),
    lambda tmp: _signed(tmp / "out", {"report.md": "old", "figures/serum.png": "old"},
                        {"b12pk_version": "0.1.0"}),  # a b12pk 0.1 report
], ids=["empty", "signed", "legacy-0.1"])
def test_output_folder_replaced_when_b12pk_wrote_it(tmp_path, make):
    target = make(tmp_path)
    with atomic_output_dir(target, kind="test") as tmp:
        (tmp / "new.csv").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.csv", "run.json"]
    sig = json.loads((target / "run.json").read_text())["b12pk_output"]
    assert sig["kind"] == "test" and sig["files"] == ["new.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_signed_output_can_be_replaced_again_and_again(tmp_path):
    for i in range(3):
        with atomic_output_dir(tmp_path / "out") as tmp:
            (tmp / "figures").mkdir()
            (tmp / "figures" / f"f{i}.png").write_text("x")
    assert _tree(tmp_path / "out").keys() == {"figures", "figures/f2.png", "run.json"}


def test_writer_run_json_keeps_its_record_and_gains_the_signature(tmp_path):
    with atomic_output_dir(tmp_path / "out") as tmp:
        (tmp / "run.json").write_text(json.dumps({"command": ["b12pk"]}))
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["command"] == ["b12pk"] and record["b12pk_output"]["files"] == []


def test_failed_block_leaves_earlier_folder_and_no_temporary(tmp_path):
    target = _signed(tmp_path / "out", {"a.csv": "old"}, SIGNED)
    before = _tree(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(target) as tmp:
            (tmp / "a.csv").write_text("new")
            raise KeyboardInterrupt
    assert _tree(tmp_path) == before


def test_folder_changed_during_the_run_is_not_replaced(tmp_path):
    target = _signed(tmp_path / "out", {"a.csv": "old"}, SIGNED)
    with pytest.raises(OutputError, match="'late.txt'"):
        with atomic_output_dir(target) as tmp:
            (tmp / "a.csv").write_text("new")
            (target / "late.txt").write_text("the user saved this meanwhile")
    assert (target / "late.txt").read_text() == "the user saved this meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_io_error_names_the_users_path_not_the_temporary(tmp_path):
    with pytest.raises(OSError) as info:
        with atomic_output_dir(tmp_path / "out"):
            raise OSError(28, "No space left on device", str(tmp_path / ".out.b12pk-tmp-1-x/f"))
    assert "b12pk-tmp" not in str(info.value) and "'" + str(tmp_path / "out") in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["compare", *FAST], ["validate"], ["evidence", "--ids", "C001", "--max-days", "30"],
    ["population", "--regimen", "1000 mcg oral daily", "--n", "50", "--days", "10"],
    ["design", "--target", "serum >= 200 pmol/L in 90 % of patients from day 5 to day 20",
     "--routes", "oral", "--oral-doses", "500", "--population", "16"],
])
def test_every_command_refuses_a_users_folder(tmp_path, capsys, command):
    target = _user_folder(tmp_path)
    before = _tree(tmp_path)
    assert main([*command, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did not write" in err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("command", [
    ["compare", *FAST], ["validate"], ["evidence", "--ids", "C001", "--max-days", "30"],
    ["population", "--regimen", "1000 mcg oral daily", "--n", "50", "--days", "10"],
    ["design", "--target", "serum >= 200 pmol/L in 90 % of patients from day 5 to day 20",
     "--routes", "oral", "--oral-doses", "500", "--population", "16"],
])
def test_every_command_signs_and_replaces_its_own_output(tmp_path, capsys, command):
    out = tmp_path / "out"
    assert main([*command, "--out", str(out)]) == 0
    assert main([*command, "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    listed = set(record["b12pk_output"]["files"]) | {"run.json"}
    assert set(_tree(out)) == listed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# =======================================================================================
# Output files
# =======================================================================================

def test_file_output_writes_through_a_character_device():
    path = atomic_write_text("/dev/null", "discarded")
    assert Path(path).is_char_device()


def test_file_output_follows_a_symbolic_link(tmp_path):
    (tmp_path / "target.csv").write_text("old")
    (tmp_path / "link.csv").symlink_to("target.csv")
    atomic_write_text(tmp_path / "link.csv", "new")
    assert (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "target.csv").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "target.csv"]


@pytest.mark.parametrize("make, needle", [
    (lambda t: (t / "d").mkdir() or t / "d", "it is a folder"),
    (lambda t: os.mkfifo(t / "f") or t / "f", "not a regular file"),
    (lambda t: t / "missing" / "f.csv", "does not exist"),
    (lambda t: "", "path is empty"),
    (lambda t: str(t / "a\x00b"), "NUL character"),
], ids=["folder", "fifo", "no-parent", "empty", "nul"])
def test_file_output_refused(tmp_path, make, needle):
    target = make(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(OutputError, match=needle):
        atomic_write_text(target, "x")
    assert _tree(tmp_path) == before


def test_file_output_gets_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.csv", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o644


def test_simulate_out_dev_null_is_not_replaced(capsys):
    assert main(["simulate", *FAST, "--out", "/dev/null"]) == 0
    assert Path("/dev/null").is_char_device()


# =======================================================================================
# Stale temporaries (kill -9) and signals
# =======================================================================================

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead, tag = _dead_pid(), HOST_TAG
    stale = [f".rep.b12pk-tmp-{tag}-{dead}-0123abcd", f".pop.b12pk-stage-{tag}-{dead}-00000000",
             f".course.csv.b12pk-tmp-{tag}-{dead}-deadbeef", ".b12pk-trajectories-k2j4h6g8"]
    kept = [f".rep.b12pk-tmp-{tag}-{os.getpid()}-0123abcd",  # a live process (this one)
            f".rep.b12pk-tmp-abcdef-{dead}-0123abcd" if tag != "abcdef" else ".x",  # other host
            f".rep.b12pk-tmp-{tag}-{'9' * 30}-0123abcd",  # not a pid
            ".bashrc", ".rep.tmp-notes-of-mine", "rep.b12pk-tmp-1-0123abcd",
            ".thesis.old-20240101", ".notes.tmp-backup01"]  # look like b12pk 0.1's: kept
    for name in stale[:2] + stale[3:]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "inside.png").write_text("x")
    (tmp_path / stale[2]).write_text("half a csv")
    for name in kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.txt").write_text("keep")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert all((tmp_path / name / "mine.txt").read_text() == "keep" for name in kept)


def test_earlier_output_set_aside_by_a_killed_run_is_put_back(tmp_path):
    """kill -9 between the two renames: the earlier report is under the -old- name only."""
    old = _signed(tmp_path / f".rep.b12pk-old-{HOST_TAG}-{_dead_pid()}-0123abcd",
                  {"a.csv": "earlier"}, SIGNED)
    assert remove_stale_temporaries(tmp_path) == []
    assert not old.exists() and (tmp_path / "rep" / "a.csv").read_text() == "earlier"


def test_legacy_folder_with_a_user_file_below_is_refused(tmp_path):
    target = _signed(tmp_path / "out", {"report.md": "old", "figures/serum.png": "old",
                                        "figures/my-notes.docx": "mine"},
                     {"b12pk_version": "0.1.0"})
    with pytest.raises(OutputError, match="my-notes.docx"):
        output_dir_target(target)


def test_a_link_to_the_current_folder_is_refused(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "mine.txt").write_text("keep")
    (tmp_path / "alias").symlink_to(tmp_path / "work")
    monkeypatch.chdir(tmp_path / "work")
    for path in (tmp_path / "work", str(tmp_path / "alias") + "/"):
        with pytest.raises(OutputError):
            output_dir_target(path)


def test_signal_state_does_not_outlive_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(b12pk.report.comparison, "_render_md", lambda *a, **k: _swallowed_sigint() or "")
    assert main(["compare", *FAST, "--out", str(tmp_path / "a")]) == 130
    monkeypatch.undo()
    atomic_write_text(tmp_path / "later.csv", "x")  # a later write in the same process
    with atomic_output_dir(tmp_path / "b") as tmp:
        (tmp / "f.csv").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "later.csv"]


def test_next_run_removes_what_a_killed_run_left(tmp_path, capsys):
    dead = _dead_pid()
    litter = tmp_path / f".out.b12pk-tmp-{HOST_TAG}-{dead}-0123abcd"
    litter.mkdir()
    (litter / "summary.csv").write_text("half")
    assert main(["simulate", *FAST, "--out", str(tmp_path / "c.csv")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "b12pk.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_temporary(folder: Path, proc: subprocess.Popen, timeout: float = 120) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if any(".b12pk-tmp-" in p.name for p in folder.iterdir()):
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_mid_write_keeps_earlier_report_and_leaves_no_temporary(tmp_path, sig, code):
    earlier = _signed(tmp_path / "rep", {"a.csv": "earlier"}, SIGNED)
    before = _tree(tmp_path)
    proc = _cli(["compare", *FAST, "--out", "rep"], tmp_path)
    assert _wait_for_temporary(tmp_path, proc), proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # the signal came as the report was renamed into place
        pytest.skip("the run finished before the signal")
    assert proc.returncode == code
    assert err.count("\n") == 1 and "interrupted by " + sig.name in err, err
    assert "Traceback" not in err
    assert _tree(tmp_path) == before
    assert earlier.exists()


def test_sigterm_during_population_leaves_nothing(tmp_path):
    proc = _cli(["population", "--regimen", "1000 mcg IM monthly", "--n", "200000",
                 "--days", "365", "--chunk-size", "2048", "--workers", "1", "--trajectories", "10",
                 "--out", "pop"], tmp_path)
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("b12pk: interrupted by SIGTERM")
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_sigkill_litter_is_removed_by_the_next_run(tmp_path):
    proc = _cli(["compare", *FAST, "--out", "rep"], tmp_path)
    assert _wait_for_temporary(tmp_path, proc)
    proc.kill()
    proc.communicate()
    assert main(["compare", *FAST, "--out", str(tmp_path / "rep")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


# =======================================================================================
# Property: no command leaves a file it did not promise
# =======================================================================================

_COMMANDS = {
    "simulate": ["simulate", "--regimen", "1000 mcg oral daily", "--days", "5"],
    "compare": ["compare", "--regimen", "1000 mcg oral daily", "--patient", "healthy",
                "--days", "5"],
    "population": ["population", "--regimen", "1000 mcg oral daily", "--n", "20",
                   "--days", "5"],
}
_BAD_EXTRA = [[], ["--days", "-1"], ["--days", "nan"], ["--regimen", "1000 mcg oral dialy"],
              ["--patient", "no-such-preset"], ["--days", "1e-9"]]
_OUT_KINDS = ["new", "user-folder", "signed", "file", "link", "missing-parent", "dot", "empty"]


def _prepare_out(tmp: Path, kind: str) -> str:
    if kind == "user-folder":
        _user_folder(tmp)
    elif kind == "signed":
        _signed(tmp / "out", {"a.csv": "b12pk"}, SIGNED)
    elif kind == "file":
        (tmp / "out").write_text("mine")
    elif kind == "link":
        (tmp / "real").mkdir()
        (tmp / "out").symlink_to("real")
    return {"missing-parent": "no/such/out", "dot": ".", "empty": ""}.get(kind, "out")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(_COMMANDS)), extra=st.sampled_from(_BAD_EXTRA),
       kind=st.sampled_from(_OUT_KINDS))
def test_no_command_leaves_a_file_it_did_not_promise(tmp_path_factory, command, extra, kind):
    tmp = tmp_path_factory.mktemp("prop")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        out = _prepare_out(tmp, kind)
        before = _tree(tmp)
        code = main([*_COMMANDS[command], *extra, "--out", out])
        after = _tree(tmp)
    finally:
        os.chdir(cwd)
    changed = {k for k in set(before) | set(after) if before.get(k, b"?") != after.get(k, b"?")}
    if code != 0:
        assert changed == set()  # a failed run changes nothing at all
        return
    promised = Path(out).parts[0] if out else None
    assert all(Path(k).parts[0] == promised for k in changed), changed
    assert kind != "user-folder"  # a folder b12pk did not write is never replaced
    assert kind != "file" or command == "simulate"  # only a file output replaces a file


# =======================================================================================
# Input files: regular files only, bounded
# =======================================================================================

@pytest.mark.parametrize("make, needle", [
    (lambda t: os.mkfifo(t / "f.toml") or t / "f.toml", r"is a FIFO \(named pipe\)"),
    (lambda t: Path("/dev/zero"), "is a character device"),
    (lambda t: (t / "d.toml").mkdir() or t / "d.toml", "is a folder"),
    (lambda t: t / "missing.toml", "no such file"),
], ids=["fifo", "device", "folder", "missing"])
def test_input_files_must_be_regular(tmp_path, make, needle):
    path = make(tmp_path)
    start = time.monotonic()
    for reader in (b12pk.load_regimens, load_patients, b12pk.read_event_table):
        with pytest.raises(FileFormatError, match=needle):
            reader(path)
    with pytest.raises(FileFormatError, match=needle):
        read_bytes(path, 1000, "a test file")
    assert time.monotonic() - start < 5  # a FIFO is never opened for a blocking read


@pytest.mark.parametrize("argv", [
    ["compare", "--regimen", "{fifo}"], ["compare", "--patient", "{fifo}"],
    ["simulate", "--regimen", "{fifo}"], ["population", "--regimen", "{fifo}"],
    ["simulate", "--regimen", "1000 mcg oral daily", "--patient", "{fifo}"],
])
def test_cli_refuses_a_fifo_as_input_without_blocking(tmp_path, capsys, argv):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = [a.format(fifo=fifo) for a in argv] + ["--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "is a FIFO" in capsys.readouterr().err


def test_file_over_the_limit_is_refused_from_its_size(tmp_path):
    big = tmp_path / "big.toml"
    with open(big, "wb") as fh:
        fh.truncate(50_000_000)  # sparse: the size is checked before any read
    with pytest.raises(ResourceError, match="too big"):
        read_bytes(big, 1000, "a test file")


_BIG = "1" + "0" * 400
_TOML_BIG_INTS = [
    ("amount", f"[regimen]\namount_ug = {_BIG}\nroute = 'im'\n"),
    ("start-day", f"[regimen]\namount_ug = 1000\nroute = 'im'\nstart_day = {_BIG}\n"),
    ("n-doses", f"[regimen]\namount_ug = 1000\nroute = 'im'\ninterval_days = 30\n"
                f"n_doses = {_BIG}\n"),
    ("interval", f"[regimen]\namount_ug = 1000\nroute = 'im'\ninterval_days = {_BIG}\n"),
    ("negative", f"[regimen]\namount_ug = -{_BIG}\nroute = 'im'\n"),
    ("just-over-2**53", f"[regimen]\namount_ug = {2**53 + 1}\nroute = 'im'\n"),
    ("in-an-array", f"[regimen]\ntext = '1000 mcg IM monthly'\nx = [1, [2, {_BIG}]]\n"),
    ("open-ended", f"[regimen]\ntext = '1000 mcg IM monthly'\nopen_ended_days = {_BIG}\n"),
]


@pytest.mark.parametrize("content", [c[1] for c in _TOML_BIG_INTS],
                         ids=[c[0] for c in _TOML_BIG_INTS])
def test_toml_integers_too_large_for_a_float_are_refused(tmp_path, content):
    path = tmp_path / "r.toml"
    path.write_text(content)
    with pytest.raises(FileFormatError, match="too large to use; accepted: integers of "
                                              "magnitude at most 2\\*\\*53"):
        b12pk.load_regimens(path)


@pytest.mark.parametrize("key", ["egfr_ml_min", "baseline_stores_ug", "serum_pmol_per_l",
                                 "diet_ug_per_day", "ileal_resection_cm"])
def test_patient_toml_integers_too_large_are_refused(tmp_path, capsys, key):
    path = tmp_path / "p.toml"
    path.write_text(f"[patient]\npreset = 'healthy'\n{key} = {_BIG}\n")
    assert main(["simulate", "--regimen", "1000 mcg oral daily", "--patient", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "b12pk: error:" in err and len(err) < 700


def test_read_toml_returns_document_and_text(tmp_path):
    (tmp_path / "a.toml").write_text("x = 9007199254740992\n")
    doc, text = read_toml(tmp_path / "a.toml", 1000, "a test file")
    assert doc == {"x": 2 ** 53} and text.startswith("x =")


# =======================================================================================
# Echoes: short, one line, no raw control characters
# =======================================================================================

@pytest.mark.parametrize("value, expected", [
    ("plain", "'plain'"), ("a\nb", "'a\\nb'"), ("\x1b[31mred", "'\\x1b[31mred'"),
    ("nul\x00", "'nul\\x00'"), ("tab\t", "'tab\\t'"), ("rtl\u202e", "'rtl\\u202e'"),
    ("x" * 100, "'" + "x" * 80 + "'... (20 more characters)"), (12.5, "12.5"),
])
def test_echo(value, expected):
    assert echo(value) == expected


def test_messages_are_bounded_and_escaped():
    msg = sanitize_message("start \x1b[2J\x00 " + "y" * 10_000 + " accepted: this end")
    assert len(msg) < 700 and "\x1b" not in msg and "\x00" not in msg
    assert msg.startswith("start \\x1b[2J\\x00") and msg.endswith("accepted: this end")


@pytest.mark.parametrize("argv", [
    ["simulate", "--regimen", "x" * 1_000_000],
    ["simulate", "--regimen", "1000 mcg oral \x1b[2J\x00daily"],
    ["simulate", "--regimen", "1000 mcg oral daily", "--patient", "\x1b]0;pwned\x07" * 1000],
    ["compare", "--patient", "p" * 100_000],
    ["population", "--regimen", "1000 mcg oral daily", "--backend", "\x1b[31m" * 500],
    ["simulate", "--regimen", "1000 mcg " + "oral " * 50_000 + "daily"],
])
def test_cli_errors_are_one_short_clean_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 800
    assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) < 0xa0 for c in err), err[:200]


def test_b12pk_errors_carry_clean_messages():
    err = B12pkError("line one\nline two \x1b[0m")
    assert str(err) == "line one line two \\x1b[0m"


# =======================================================================================
# Fuzzer findings: swallowed signals, outputs that are inputs
# =======================================================================================

def _swallowed_sigint(*args, **kwargs):
    """What numba's and importlib's callbacks do: the handler's exception is lost."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
    except BaseException:  # noqa: BLE001 - the point of the test
        pass


def test_a_swallowed_signal_still_stops_the_run_before_the_rename(tmp_path, monkeypatch, capsys):
    earlier = _signed(tmp_path / "rep", {"a.csv": "earlier"}, SIGNED)
    before = _tree(tmp_path)
    monkeypatch.setattr(b12pk.report.comparison, "_render_md", lambda *a, **k: _swallowed_sigint() or "")
    code = main(["compare", *FAST, "--out", str(earlier)])
    assert code == 130 and "interrupted by SIGINT" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_a_signal_swallowed_after_the_output_still_gives_exit_130(tmp_path, monkeypatch, capsys):
    import b12pk.cli as cli

    real = cli._cmd_simulate

    def run_then_swallow(args):
        code = real(args)
        _swallowed_sigint()
        return code

    monkeypatch.setattr(cli, "_cmd_simulate", run_then_swallow)
    assert main(["simulate", *FAST, "--out", str(tmp_path / "c.csv")]) == 130
    assert capsys.readouterr().err.endswith("b12pk: interrupted by SIGINT\n")
    assert (tmp_path / "c.csv").read_text().startswith("time_days")  # complete, not partial


@pytest.mark.parametrize("make_args", [
    lambda r, p: ["simulate", "--regimen", r, "--out", r],
    lambda r, p: ["simulate", "--regimen", "1000 mcg oral daily", "--patient", p, "--out", p],
    lambda r, p: ["export-sbml", "--regimen", r, "--out", r],
    lambda r, p: ["export-sbml", "--patient", p, "--out", p],
], ids=["simulate-regimen", "simulate-patient", "sbml-regimen", "sbml-patient"])
def test_output_that_is_an_input_is_refused(tmp_path, capsys, make_args):
    r, p = tmp_path / "r.toml", tmp_path / "p.toml"
    r.write_text('[[regimen]]\ntext = "1000 mcg IM monthly"\n')
    p.write_text('[patient]\npreset = "healthy"\n')
    (tmp_path / "link.toml").symlink_to(r)
    before = _tree(tmp_path)
    assert main([str(a) for a in make_args(r, p)]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert main(["simulate", "--regimen", str(r), "--out", str(tmp_path / "link.toml")]) == 2
    assert _tree(tmp_path) == before


def test_a_file_of_range_variants_says_how_many_regimens_it_gives(tmp_path, capsys):
    path = tmp_path / "v.toml"
    path.write_text('[regimen]\nlabel = "x"\ntext = "1000-2000 mcg oral daily for 1-2 weeks"\n'
                    'variants = true\n')
    assert main(["compare", "--regimen", str(path), "--patient", "healthy", "--days", "5",
                 "--out", str(tmp_path / "o")]) == 0
    assert "gives 4 regimens (range variants included)" in capsys.readouterr().err


def test_legacy_temporaries_of_the_output_being_written_are_removed(tmp_path):
    """b12pk 0.1 named them .<name>.tmp-XXXXXXXX: removed for that output only, and only
    when they hold nothing but what b12pk writes; a set-aside .old- folder is put back."""
    for name, files in {".rep.tmp-ab12cd34": ["summary.csv", "figures/serum.png"],
                        ".rep.tmp-notes123": ["thesis.docx"],  # not b12pk's content
                        ".other.tmp-ab12cd34": ["summary.csv"],  # not this output
                        ".rep.old-zz12cd34": ["report.md", "run.json"],
                        ".rep.old-unsigned": ["report.md"]}.items():
        for f in files:
            (tmp_path / name / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / f).write_text('{"b12pk_version": "0.1.0"}' if f == "run.json"
                                             else "x")
    assert sorted(remove_stale_temporaries(tmp_path, "rep")) == [".rep.old-unsigned",
                                                                 ".rep.tmp-ab12cd34"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-ab12cd34",
                                                          ".rep.tmp-notes123", "rep"]
    assert (tmp_path / "rep" / "report.md").exists()



def test_a_signal_during_a_held_import_waits_for_the_import(tmp_path, monkeypatch):
    # a signal inside a compiled extension's initialisation used to abort the interpreter
    # at exit (SIGABRT): imports under import_uninterrupted finish first, then it is raised
    from b12pk.io import Interrupted, handle_signals, import_uninterrupted

    (tmp_path / "b12pk_sigmod.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.05)\n"
        "done = True\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with handle_signals():
        with pytest.raises(Interrupted):
            import_uninterrupted("b12pk_sigmod")
    assert sys.modules["b12pk_sigmod"].done
