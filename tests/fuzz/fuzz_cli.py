"""Adversarial harness for the b12pk command line and library (not part of the test suite).

Run from the repository root::

    python tests/fuzz/fuzz_cli.py                        # every class, 2 cases at a time
    python tests/fuzz/fuzz_cli.py --classes data-loss,litter --json /tmp/fuzz.json
    python tests/fuzz/fuzz_cli.py --list                 # the cases, one line each
    python tests/fuzz/fuzz_cli.py --case 'dl-compare-*' --keep   # rerun some, keep sandboxes
    python tests/fuzz/fuzz_cli.py --show tb-toml-regimen-amount_ug-int400

Each case runs in a fresh sandbox folder (``work/`` is the current folder, ``tmp/`` is
``TMPDIR``) as a subprocess: the ``b12pk`` command line, or ``python -c`` for the library
cases. The sandbox is snapshotted (paths, kinds, sizes, mtimes, SHA-256 of regular files,
symlink targets, device numbers) before and after, and each case is classified as one of

    ok                         the promise held
    hang                       ran past its time limit (killed)
    crash-signal               died of a signal it was not sent (SIGSEGV, SIGABRT, ...)
    traceback                  a Python traceback, or a library call raised an exception
                               that is not a B12pkError (nor a documented TypeError)
    user-file-lost-or-changed  a file or folder that existed before is gone or different
                               (b12pk may replace only its own earlier output, and only
                               when it succeeds)
    litter                     a file it did not promise: temporaries (.NAME.tmp-*,
                               .NAME.old-*, .b12pk-*, .NAME.XXXXXXXX), anything left in
                               TMPDIR, partial output after a failure, stale temporaries of
                               b12pk's naming not removed by the next run
    silent-accept              an input that must be refused was accepted (or a library
                               call returned a wrong answer, checked by an assertion)
    multi-line-or-huge-error   the failure did not print exactly one line starting
                               "b12pk: error:" of at most --max-line characters
                               (argparse usage errors land here too)
    unclear-message            the error line holds raw control characters or names a
                               temporary file of b12pk's; a memory failure that does not
                               say so
    wrong-exit                 an exit status other than the promised one (2 for bad input,
                               1 for other failures, 130 after SIGINT), or a valid input
                               refused

Memory cases run under ``ulimit -v`` (3 GB), full-disk cases under ``ulimit -f`` (with
SIGXFSZ ignored, so writes fail with EFBIG). "Read-only" folders are made immutable with
``chattr +i`` (root ignores permission bits); device copies are made with ``mknod``.

The script prints a table of classes by outcome, the failing cases (one line each) and
failures grouped by signature, and exits with status 1 if any case failed. pytest does not
collect it (``tests/fuzz/fuzz_*.py`` does not match ``test_*.py``).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def _host_tag() -> str:
    """The machine and PID-namespace tag b12pk puts in its temporaries' names."""
    import hashlib
    import socket

    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = ""
    return hashlib.sha1(f"{socket.gethostname()}|{ns}".encode()).hexdigest()[:6]


HOST = _host_tag()
_SCRIPT = Path(PYTHON).with_name("b12pk")
B12PK = [str(_SCRIPT)] if _SCRIPT.exists() else [PYTHON, "-m", "b12pk.cli"]

OUTCOMES = ("ok", "hang", "crash-signal", "traceback", "user-file-lost-or-changed", "litter",
            "silent-accept", "multi-line-or-huge-error", "unclear-message", "wrong-exit")
GB = 1 << 30
MEM_LIMIT = 3 * GB
MAX_LINE = 640           # MAX_MESSAGE_CHARS (600, docs/errors.md) plus the "b12pk: error: " prefix
SHORT_TIMEOUT = 20.0     # FIFOs and devices: a refusal is immediate, so 20 s is a hang
R_OK = "1000 mcg IM monthly"

#: A new name like this is a temporary: b12pk writes no hidden files, so any new dot name
#: counts (.NAME.tmp-*, .NAME.old-*, .b12pk-trajectories-*, .NAME.b12pk-tmp-PID-*, ...).
TEMP_RE = re.compile(r"^\.|\.tmp$|tmp-")
TEMP_IN_MSG_RE = re.compile(r"\.tmp-|\.old-|b12pk-(tmp|old|stage)-|\.b12pk-trajectories-"
                            r"|/\.[^/\s'\"]+\.[a-z0-9_]{8}\b|\.[^/\s'\"]+\.tmp\b")
CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MEMORY_WORDS = re.compile(r"memory|GB|GiB|MB|limit|too (big|large|many)", re.I)
API_MARK = "@@B12PK-FUZZ@@"


# -- cases ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Case:
    """One adversarial input and what b12pk promised for it."""

    cls: str
    id: str
    argv: list[str] | None = None       # b12pk arguments ("{WORK}" is the sandbox path)
    py: str | None = None               # library case: body of a function (python -c)
    setup: tuple = ()                   # ops, see _apply_setup
    expect: str = "either"              # "error": must be refused; "ok": must succeed
    codes: tuple = (2,)                 # accepted exit statuses of a refusal
    outputs: tuple = ()                 # paths (under work/) it may create when it succeeds
    replaceable: tuple = ()             # b12pk's own earlier output: may go on success only
    through: tuple = ()                 # may be written through, but keep their kind/target
    removable: tuple = ()               # stale b12pk temporaries the run must remove
    cwd: str = "."
    timeout: float | None = None
    mem_limit: int | None = None
    fsize_kb: int | None = None
    signal: tuple | None = None         # (SIGNAME, "t"|"tmp", delay_s)
    rerun: bool = False                 # run argv again after the signal
    stdout: str = "pipe"                # "pipe", "closed" (EPIPE), "full" (/dev/full)
    check: str | None = None            # post-check on success (see _post_check)
    api_types: tuple = ()               # extra accepted exception names ("TypeError")
    note: str = ""

    def repro(self) -> str:
        steps = [_describe_op(op) for op in self.setup]
        env = []
        if self.mem_limit:
            env.append(f"ulimit -v {self.mem_limit // 1024}")
        if self.fsize_kb:
            env.append(f"trap '' XFSZ; ulimit -f {self.fsize_kb}")
        if self.cwd != ".":
            steps.append(f"cd {shlex.quote(self.cwd)}")
        if self.argv is not None:
            cmd = shlex.join(["b12pk", *self.argv])
            if self.stdout == "closed":
                cmd += " | true"
            elif self.stdout == "full":
                cmd += " > /dev/full"
        else:
            cmd = "python -c " + shlex.quote(_api_code(self))
        if self.signal:
            name, trig, delay = self.signal
            when = f"{delay} s after start" if trig == "t" else \
                f"{delay} s after its first temporary appears"
            cmd += f"   # then kill -{name[3:]} {when}" + (", then rerun" if self.rerun else "")
        return "; ".join(steps + env + [cmd])


def _describe_op(op: tuple) -> str:
    kind, path = op[0], op[1]
    q = shlex.quote(path)
    if kind == "file":
        data = op[2]
        size = len(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
        if size <= 120 and isinstance(data, str):
            return f"printf %s {shlex.quote(data)} > {q}"
        return f"write {size:,} bytes to {q}"
    if kind == "dir":
        return f"mkdir -p {q}"
    if kind == "fifo":
        return f"mkfifo {q}"
    if kind == "chardev":
        return f"mknod {q} c {op[2]} {op[3]}"
    if kind == "symlink":
        return f"ln -s {shlex.quote(op[2])} {q}"
    if kind == "immutable":
        return f"chattr +i {q}"
    if kind == "old":
        return f"touch -d '2 days ago' {q}"
    if kind == "report":
        return f"(an earlier `b12pk {op[2]}` report in {q})"
    return repr(op)


# -- sandbox ----------------------------------------------------------------------------------

class Prebuilt:
    """Real b12pk outputs (to stand for an earlier report), built once."""

    ARGS = {
        "compare": ["compare", "--regimen", R_OK, "--patient", "healthy", "--days", "2"],
        "population": ["population", "--regimen", R_OK, "--n", "16", "--days", "3"],
        "evidence": ["evidence", "--ids", "C001", "--max-days", "30"],
        "validate": ["validate"],
    }

    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.Lock()
        self.made: dict[str, Path] = {}
        self.notes: list[str] = []

    def get(self, kind: str) -> Path:
        with self.lock:
            if kind not in self.made:
                out = self.root / f"prebuilt-{kind}"
                r = subprocess.run([*B12PK, *self.ARGS[kind], "--out", str(out)], cwd=self.root,
                                   env=_env(self.root), capture_output=True, text=True,
                                   timeout=300)
                if r.returncode != 0 or not (out / "run.json").is_file():
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    (out / "run.json").write_text(json.dumps(
                        {"b12pk_version": "0.1.0", "command": ["b12pk", kind]}) + "\n")
                    (out / "summary.csv").write_text("synthetic\n")
                    self.notes.append(f"could not build a real {kind} report "
                                      f"(exit {r.returncode}); used a synthetic run.json")
                self.made[kind] = out
            return self.made[kind]


PREBUILT: Prebuilt | None = None
MPLDIR: Path | None = None


def _env(case_tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MPLBACKEND="Agg", TMPDIR=str(case_tmp), PYTHONUNBUFFERED="1",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
               MPLCONFIGDIR=str(MPLDIR) if MPLDIR else str(case_tmp))
    env.pop("PYTHONWARNINGS", None)
    return env


def _apply_setup(work: Path, ops: tuple) -> list[Path]:
    immutable = []
    for op in ops:
        kind, rel = op[0], op[1]
        p = work / rel
        if kind != "symlink" and kind != "immutable" and kind != "old":
            p.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            data = op[2]
            p.write_bytes(data if isinstance(data, bytes)
                          else data.encode("utf-8", "surrogatepass"))
        elif kind == "dir":
            p.mkdir(parents=True, exist_ok=True)
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "chardev":
            try:
                os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(op[2], op[3]))
            except PermissionError:  # not root: the real device through a symlink
                os.symlink({(1, 3): "/dev/null", (1, 5): "/dev/zero",
                            (1, 9): "/dev/urandom"}[(op[2], op[3])], p)
        elif kind == "symlink":
            p.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(op[2], p)
        elif kind == "report":
            shutil.copytree(PREBUILT.get(op[2]), p, symlinks=True)
        elif kind == "old":
            t = time.time() - 2 * 86400
            for dirpath, dirnames, filenames in os.walk(p, topdown=False):
                for n in filenames + dirnames:
                    os.utime(os.path.join(dirpath, n), (t, t), follow_symlinks=False)
            os.utime(p, (t, t), follow_symlinks=False)
        elif kind == "immutable":
            r = subprocess.run(["chattr", "+i", str(p)], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"chattr +i {p}: {r.stderr.strip()}")
            immutable.append(p)
        else:
            raise ValueError(op)
    return immutable


def _snapshot(root: Path) -> dict[str, dict]:
    snap: dict[str, dict] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            m = st.st_mode
            e: dict[str, Any] = {"kind": "dir" if stat.S_ISDIR(m) else "link" if stat.S_ISLNK(m)
                                 else "file" if stat.S_ISREG(m) else "fifo" if stat.S_ISFIFO(m)
                                 else "chr" if stat.S_ISCHR(m) else "other"}
            if e["kind"] == "file":
                e.update(size=st.st_size, mtime=st.st_mtime_ns)
                if st.st_size <= 64 << 20:
                    h = hashlib.sha256()
                    with open(full, "rb") as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            h.update(block)
                    e["sha"] = h.hexdigest()[:16]
            elif e["kind"] == "link":
                e["target"] = os.readlink(full)
            elif e["kind"] == "chr":
                e["rdev"] = st.st_rdev
            snap[rel] = e
    return snap


def _norm(p: str) -> str:
    return os.path.normpath(p) if p else p


def _under(path: str, prefixes) -> bool:
    for pre in prefixes:
        pre = _norm(pre)
        if pre == "." or path == pre or path.startswith(pre + "/"):
            return True
    return False


def _changes(case: Case, before: dict, after: dict, success: bool) -> tuple[list, list]:
    """(lost or changed user paths, litter) between two snapshots of work/."""
    lost, litter = [], []
    removable = set(map(_norm, case.removable))
    through = set(map(_norm, case.through))
    for rel, e in before.items():
        if rel in removable:
            if success and rel in after:
                litter.append(f"stale temporary not removed: {rel!r}")
            continue
        if _under(rel, removable) or (success and _under(rel, case.replaceable)):
            continue
        a = after.get(rel)
        if a is None:
            lost.append(f"lost {rel!r}")
        elif a["kind"] != e["kind"]:
            lost.append(f"{rel!r} {e['kind']} became {a['kind']}")
        elif a.get("target") != e.get("target") or a.get("rdev") != e.get("rdev"):
            lost.append(f"{rel!r} changed target")
        elif e["kind"] == "file" and rel not in through and \
                (a["sha"], a["size"], a["mtime"]) != (e["sha"], e["size"], e["mtime"]):
            lost.append(f"changed {rel!r}")
    new = {rel for rel in after if rel not in before}
    for rel in sorted(new):
        if any(p in new for p in _parents(rel)):
            if TEMP_RE.search(os.path.basename(rel)) and not any(
                    TEMP_RE.search(os.path.basename(p)) for p in _parents(rel) if p in new):
                litter.append(f"temporary {rel!r}")
            continue  # reported with its new parent
        if TEMP_RE.search(os.path.basename(rel)):
            litter.append(f"temporary {rel!r}")
        elif _under(rel, case.outputs) or _under(rel, case.replaceable):
            if not success:
                litter.append(f"partial output {rel!r} left after a failure")
        else:
            litter.append(f"unpromised {rel!r}")
    return lost, litter


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


# -- running ----------------------------------------------------------------------------------

def _api_code(case: Case) -> str:
    extra = "".join(f"{t}, " for t in case.api_types)
    return (
        "import json, math, sys, traceback\n"
        "def _out(**kw):\n"
        f"    sys.stdout.write('\\n{API_MARK}' + json.dumps(kw) + '\\n'); sys.stdout.flush()\n"
        "import b12pk\n"
        "from b12pk import *\n"
        "from b12pk import B12pkError\n"
        f"_ALLOWED = (B12pkError, {extra})\n"
        "def _case():\n" + textwrap.indent(textwrap.dedent(case.py).strip("\n"), "    ") + "\n"
        "try:\n"
        "    _r = _case()\n"
        "except AssertionError as _e:\n"
        "    _out(verdict='wrong', type='AssertionError', msg=str(_e)[:2000])\n"
        "except _ALLOWED as _e:\n"
        "    _out(verdict='refused', type=type(_e).__name__, msg=str(_e))\n"
        "except BaseException as _e:\n"
        "    traceback.print_exc()\n"
        "    _out(verdict='crash', type=type(_e).__name__, msg=str(_e)[:2000])\n"
        "    sys.exit(1)\n"
        "else:\n"
        "    _out(verdict='accepted', result=repr(_r)[:300])\n")


def _command(case: Case, work: Path) -> list[str]:
    if case.argv is not None:
        cmd = [*B12PK, *[a.replace("{WORK}", str(work)) for a in case.argv]]
    else:
        cmd = [PYTHON, "-c", _api_code(case)]
    pre = []
    if case.fsize_kb:
        pre.append(f"trap '' XFSZ; ulimit -f {case.fsize_kb}")
    if case.mem_limit:
        pre.append(f"ulimit -v {case.mem_limit // 1024}")
    if pre:
        cmd = ["bash", "-c", "; ".join(pre) + '; exec "$@"', "b12pk-fuzz", *cmd]
    return cmd


def _launch(case: Case, work: Path, tmp: Path, timeout: float) -> dict:
    cmd = _command(case, work)
    stdout: Any = subprocess.PIPE
    closers = []
    if case.stdout == "closed":
        r, w = os.pipe()
        os.close(r)
        stdout = w
        closers.append(w)
    elif case.stdout == "full":
        stdout = open("/dev/full", "wb")
        closers.append(stdout)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work / case.cwd, env=_env(tmp), stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.PIPE, start_new_session=True)
    for c in closers:
        os.close(c) if isinstance(c, int) else c.close()
    sent: dict[str, Any] = {}
    if case.signal:
        th = threading.Thread(target=_signaller, args=(proc, case.signal, work, sent), daemon=True)
        th.start()
    hang = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hang = True
        _killpg(proc, signal.SIGKILL)
        out, err = proc.communicate()
    if case.signal:
        sent["stop"] = True
    _killpg(proc, signal.SIGKILL)  # stray children of the session
    labels = _read_labels(work, case) if case.check and proc.returncode == 0 else None
    return {"labels": labels, "rc": proc.returncode,
            "stdout": (out or b"").decode("utf-8", "replace"),
            "stderr": (err or b"").decode("utf-8", "replace"), "hang": hang,
            "wall": time.monotonic() - t0, "sent": sent.get("sig"), "sent_at": sent.get("at")}


def _killpg(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signaller(proc: subprocess.Popen, spec: tuple, work: Path, sent: dict) -> None:
    name, trigger, delay = spec
    t0 = time.monotonic()
    if trigger == "tmp":
        while proc.poll() is None and not sent.get("stop") and time.monotonic() - t0 < 120:
            try:
                if any(TEMP_RE.search(n) for n in os.listdir(work)):
                    break
            except OSError:
                pass
            time.sleep(0.005)
    end = time.monotonic() + delay
    while time.monotonic() < end and proc.poll() is None:
        time.sleep(0.005)
    if proc.poll() is not None or sent.get("stop"):
        return
    sig = getattr(signal, name)
    sent["sig"], sent["at"] = name, round(time.monotonic() - t0, 3)
    if sig == signal.SIGTERM:
        os.kill(proc.pid, sig)      # what timeout(1), CI runners and container stops send
    else:
        _killpg(proc, sig)          # Ctrl-C and kill -9 of the job


def run_case(case: Case, root: Path, timeout: float, keep: bool, max_line: int) -> dict:
    box = Path(tempfile.mkdtemp(prefix=f"{case.id[:40]}-", dir=root))
    work, tmp = box / "work", box / "tmp"
    work.mkdir()
    tmp.mkdir()
    immutable: list[Path] = []
    res: dict[str, Any] = {"class": case.cls, "id": case.id, "repro": case.repro()}
    try:
        immutable = _apply_setup(work, case.setup)
        before = _snapshot(work)
        t = min(timeout, case.timeout) if case.timeout else timeout
        run = _launch(case, work, tmp, t)
        first = None
        if case.rerun and not run["hang"]:
            first = run
            mid = _snapshot(work)
            plain = dataclasses.replace(case, signal=None)
            run = _launch(plain, work, tmp, t)
            run["first_rc"] = first["rc"]
            run["first_litter"] = sorted(k for k in mid if k not in before
                                         and TEMP_RE.search(os.path.basename(k)))[:5]
        after = _snapshot(work)
        tmp_left = sorted(os.listdir(tmp))
        outcome, detail = _classify(case, run, before, after, tmp_left, max_line)
        res.update(outcome=outcome, detail=detail, rc=run["rc"], wall=round(run["wall"], 2),
                   stderr_tail=run["stderr"][-1500:], stdout_tail=run["stdout"][-300:],
                   signal_sent=run["sent"], signal_at=run["sent_at"])
        if first is not None:
            res.update(first_rc=run["first_rc"], first_litter=run["first_litter"])
    except Exception as exc:  # a harness fault: report it, do not stop the run
        res.update(outcome="harness-error", detail=f"{type(exc).__name__}: {exc}", rc=None)
    finally:
        for p in immutable:
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)
        if keep and res.get("outcome") != "ok":
            res["sandbox"] = str(box)
        else:
            shutil.rmtree(box, ignore_errors=True)
    return res


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def _classify(case: Case, run: dict, before: dict, after: dict, tmp_left: list,
              max_line: int) -> tuple[str, str]:
    rc, err, out = run["rc"], run["stderr"], run["stdout"]
    if run["hang"]:
        return "hang", f"killed after {run['wall']:.0f} s"
    sent = run.get("sent")
    if rc is not None and rc < 0 and not (sent and rc == -getattr(signal, sent)):
        return "crash-signal", f"died of {signal.Signals(-rc).name}" + \
            (f" (sent {sent})" if sent else "")
    for text in (err, out):
        if "Traceback (most recent call last)" in text or "Fatal Python error" in text \
                or "terminate called" in text:
            last = [ln for ln in text.splitlines() if ln.strip()]
            exc = next((ln for ln in reversed(last) if re.match(r"^[\w.]+(Error|Exception|"
                                                                 r"Interrupt|Exit)\b", ln)),
                       last[-1] if last else "")
            return "traceback", exc.strip()[:160]
    if sent == "SIGINT" and rc == -signal.SIGINT:
        return "wrong-exit", "died of SIGINT (promised: exit 130, one line)"
    api = None
    if case.py is not None:
        for line in reversed(out.splitlines()):
            if line.startswith(API_MARK):
                api = json.loads(line[len(API_MARK):])
                break
        if api is None:
            return "traceback", f"no verdict (exit {rc}): {_error_lines(err)[-1:]}"
        if api["verdict"] == "crash":
            return "traceback", f"{api['type']}: {api['msg'][:140]}"
    success = rc == 0 and (api is None or api["verdict"] == "accepted")
    lost, litter = _changes(case, before, after, success)
    if lost:
        return "user-file-lost-or-changed", "; ".join(lost)[:240]
    litter += [f"left in TMPDIR: {n!r}" for n in tmp_left]
    if litter:
        return "litter", "; ".join(litter)[:240]
    if api is not None:
        if api["verdict"] == "wrong":
            return "silent-accept", api["msg"][:200]
        if api["verdict"] == "accepted":
            if case.expect == "error":
                return "silent-accept", f"returned {api['result'][:150]}"
            return "ok", ""
        msg = api["msg"]
        if case.expect == "ok":
            return "wrong-exit", f"valid input refused: {api['type']}: {msg[:150]}"
        if "\n" in msg.strip() or len(msg) > max_line:
            return "multi-line-or-huge-error", f"{api['type']}, {len(msg):,} chars, " \
                f"{msg.count(chr(10)) + 1} lines: {_clip(msg)}"
        if CONTROL_RE.search(msg) or TEMP_IN_MSG_RE.search(msg):
            return "unclear-message", f"{api['type']}: {ascii(msg)[:160]}"
        return "ok", f"{api['type']}"
    if case.check and rc == 0 and (problem := _post_check(case.check, run)):
        return "silent-accept", problem
    interrupted = sent in ("SIGINT", "SIGTERM") and rc != 0
    if rc == 0:
        if case.expect == "error" and not sent:
            return "silent-accept", "exit 0" + (f"; stdout: {_clip(out.strip())}" if out.strip()
                                                else "")
        if sent in ("SIGINT", "SIGTERM"):
            return "wrong-exit", f"exit 0 although {sent} was delivered at {run['sent_at']} s " \
                "(the signal was lost)"
        if case.rerun:
            return "ok", f"rerun exit 0; the killed run (exit {run.get('first_rc')}) left " \
                f"{run.get('first_litter') or 'nothing'}"
        return "ok", "finished before the signal" if case.signal and not sent else ""
    if case.expect == "ok" and not interrupted:
        return "wrong-exit", f"valid input refused (exit {rc}): {_clip(err.strip())}"
    lines = _error_lines(err)
    if interrupted:
        if len(lines) > 1 or (lines and len(lines[0]) > max_line):
            return "multi-line-or-huge-error", f"{len(lines)} lines after {sent}: " \
                f"{_clip(' | '.join(lines))}"
        if sent == "SIGINT" and rc != 130:
            return "wrong-exit", f"exit {rc} after SIGINT (promised 130)"
        return "ok", f"interrupted by {sent} at {run.get('sent_at')} s, exit {rc}"
    if len(lines) != 1 or not lines[0].startswith("b12pk: error:") or len(lines[0]) > max_line:
        kind = "argparse usage" if any(ln.startswith("usage:") for ln in lines) else \
            f"{len(lines)} lines, {len(err):,} chars"
        return "multi-line-or-huge-error", f"{kind}: {_clip(' | '.join(lines))}"
    line = lines[0]
    if CONTROL_RE.search(line) or TEMP_IN_MSG_RE.search(line):
        return "unclear-message", ascii(line)[:200]
    if case.mem_limit and not MEMORY_WORDS.search(line):
        return "unclear-message", f"memory failure not named: {_clip(line)}"
    if rc not in case.codes:
        return "wrong-exit", f"exit {rc} (promised {'/'.join(map(str, case.codes))}): " \
            f"{_clip(line)}"
    return "ok", _clip(line, 100)


def _clip(s: str, n: int = 140) -> str:
    s = ascii(s)[1:-1] if CONTROL_RE.search(s) else s
    return s if len(s) <= n else s[:n] + f"...[{len(s):,} chars]"


def _post_check(name: str, run: dict) -> str:
    """Silent-wrong-answer checks on a successful run's output."""
    if name == "distinct-labels":
        pairs = run.get("labels")
        if pairs is None:
            return "no summary.csv to check"
        dup = [p for p, n in collections.Counter(pairs).items() if n > 1]
        if dup:
            return f"summary.csv: {len(pairs)} rows, (patient, regimen) labels repeated: " \
                f"{dup[0]}"
    return ""


# -- case generators --------------------------------------------------------------------------

def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=True)  # a TOML basic string (\uXXXX escapes)


def sim(regimen: str = R_OK, *extra: str, days: str = "3") -> list[str]:
    return ["simulate", "--regimen", regimen, "--days", days, *extra]


FOLDER_CMDS = {
    "compare": lambda out: ["compare", "--regimen", R_OK, "--patient", "healthy", "--days", "2",
                            "--out", out],
    "population": lambda out: ["population", "--regimen", R_OK, "--n", "16", "--days", "3",
                               "--out", out],
    "evidence": lambda out: ["evidence", "--ids", "C001", "--max-days", "30", "--out", out],
    "validate": lambda out: ["validate", "--out", out],
}
FILE_CMDS = {
    "simulate": lambda out: sim(R_OK, "--out", out),
    "export-sbml": lambda out: ["export-sbml", "--regimen", R_OK, "--days", "30", "--out", out],
}
USER_FILES = (("file", "mydata/notes.txt", "my notes\n"),
              ("file", "mydata/sub/data.csv", "a,b\n1,2\n"))


def gen_control() -> list[Case]:
    c = "control"
    return [
        Case(c, "ctl-simulate", sim(), expect="ok"),
        Case(c, "ctl-simulate-out", sim(R_OK, "--out", "x.csv"), expect="ok", outputs=("x.csv",)),
        Case(c, "ctl-compare", FOLDER_CMDS["compare"]("rep"), expect="ok", outputs=("rep",)),
        Case(c, "ctl-population", FOLDER_CMDS["population"]("pop"), expect="ok",
             outputs=("pop",)),
        Case(c, "ctl-evidence", FOLDER_CMDS["evidence"]("ev"), expect="ok", outputs=("ev",)),
        Case(c, "ctl-export-sbml", FILE_CMDS["export-sbml"]("m.xml"), expect="ok",
             outputs=("m.xml",)),
        Case(c, "ctl-presets", ["presets"], expect="ok"),
        Case(c, "ctl-parameters", ["parameters"], expect="ok"),
        Case(c, "ctl-api-simulate", py="return len(simulate('1000 mcg IM monthly', 'healthy', 3))",
             expect="ok"),
        Case(c, "ctl-bad-regimen", sim("1000 mcg oral dialy"), expect="error"),
    ]


def gen_data_loss() -> list[Case]:
    c = "data-loss"
    cases = []
    user = USER_FILES
    real = (("file", "realdir/keep.txt", "keep me\n"),)
    kinds = [
        # name, setup, out, expect, outputs, replaceable, through, codes, cwd, timeout
        ("user-folder", user, "mydata", "either", ("mydata",), (), (), (1, 2), ".", None),
        ("user-folder-slash", user, "mydata/", "either", ("mydata",), (), (), (1, 2), ".", None),
        ("user-folder-dot", user, "mydata/.", "either", ("mydata",), (), (), (1, 2), ".", None),
        ("user-folder-abs", user, "{WORK}/mydata", "either", ("mydata",), (), (), (1, 2), ".",
         None),
        ("user-folder-forged-runjson", user + (("file", "mydata/run.json", '{"mine": 1}\n'),),
         "mydata", "either", ("mydata",), (), (), (1, 2), ".", None),
        ("user-folder-empty", (("dir", "mydata"),), "mydata", "either", ("mydata",),
         ("mydata",), (), (1, 2), ".", None),
        ("own-earlier-report", None, "rep", "ok", ("rep",), ("rep",), (), (2,), ".", None),
        ("dot", user, ".", "either", (".",), (), (), (1, 2), ".", None),
        ("dot-slash", user, "./", "either", (".",), (), (), (1, 2), ".", None),
        ("empty", user, "", "error", (), (), (), (1, 2), ".", None),
        ("dotdot", user + (("dir", "sub"),), "..", "either", (".",), (), (), (1, 2), "sub", None),
        ("abs-work", user, "{WORK}", "either", (".",), (), (), (1, 2), ".", None),
        ("existing-file", (("file", "report.txt", "mine\n"),), "report.txt", "error", (), (), (),
         (2,), ".", None),
        ("device-null", (("chardev", "devnull", 1, 3),), "devnull", "error", (), (), (),
         (1, 2), ".", None),
        ("symlink-to-user-folder", real + (("symlink", "rep", "realdir"),), "rep", "either",
         ("realdir",), (), ("rep",), (1, 2), ".", None),
        ("symlink-to-own-report", (("symlink", "rep", "old"),), "rep", "either", ("old",),
         ("old",), ("rep",), (1, 2), ".", None),
        ("symlink-dangling", (("symlink", "rep", "nowhere"),), "rep", "either", ("nowhere",), (),
         ("rep",), (1, 2), ".", None),
        ("parent-is-symlink", real + (("symlink", "lnk", "realdir"),), "lnk/rep", "either",
         ("realdir/rep",), (), ("lnk",), (1, 2), ".", None),
        ("readonly-parent", (("file", "ro/keep.txt", "x\n"), ("immutable", "ro")), "ro/rep",
         "error", (), (), (), (1, 2), ".", None),
        ("readonly-out", (("file", "ro/keep.txt", "x\n"), ("immutable", "ro")), "ro", "error",
         (), (), (), (1, 2), ".", None),
        ("through-a-file", (("file", "afile.txt", "x\n"),), "afile.txt/rep", "error", (), (), (),
         (1, 2), ".", None),
        ("missing-parent", (), "nope/deeper/rep", "error", (), (), (), (1, 2), ".", None),
        ("name-255", (), "a" * 255, "either", ("a" * 255,), (), (), (1, 2), ".", None),
        ("name-240", (), "b" * 240, "either", ("b" * 240,), (), (), (1, 2), ".", None),
        ("name-256", (), "c" * 256, "error", (), (), (), (1, 2), ".", None),
        ("name-newline", (), "rep\nort", "either", ("rep\nort",), (), (), (1, 2), ".", None),
        ("name-escape", (), "rep\x1b[31mort", "either", ("rep\x1b[31mort",), (), (), (1, 2), ".",
         None),
        ("new-subfolder-of-user-folder", user, "mydata/new", "ok", ("mydata/new",), (), (),
         (2,), ".", None),
        ("fifo", (("fifo", "out.fifo"),), "out.fifo", "error", (), (), (), (1, 2), ".",
         SHORT_TIMEOUT),
    ]
    for cmd, make in FOLDER_CMDS.items():
        subset = None if cmd == "compare" else {
            "user-folder", "user-folder-forged-runjson", "own-earlier-report", "dot", "empty",
            "device-null", "symlink-to-user-folder", "readonly-parent", "name-240", "dotdot"}
        if cmd in ("evidence", "validate"):
            subset -= {"name-240", "dotdot", "device-null", "readonly-parent", "empty"}
        for name, setup, out, expect, outputs, repl, through, codes, cwd, tmo in kinds:
            if subset is not None and name not in subset:
                continue
            if setup is None:
                setup = (("report", "rep", cmd),)
            if name == "symlink-to-own-report":
                setup = (("report", "old", cmd),) + setup
            cases.append(Case(c, f"dl-{cmd}-{name}", make(out), setup=setup, expect=expect,
                              outputs=outputs, replaceable=repl, through=through, codes=codes,
                              cwd=cwd, timeout=tmo))
    file_kinds = [
        ("new", (), "x.out", "ok", ("x.out",), (), (2,), None),
        ("existing-user-file", (("file", "x.out", "old\n"),), "x.out", "either", (), ("x.out",),
         (1, 2), None),
        ("existing-folder", user, "mydata", "error", (), (), (2,), None),
        ("device-null", (("chardev", "devnull", 1, 3),), "devnull", "either", (), ("devnull",),
         (1, 2), None),
        ("symlink-to-file", (("file", "target.out", "old\n"), ("symlink", "lnk.out",
                                                                "target.out")),
         "lnk.out", "either", (), ("lnk.out", "target.out"), (1, 2), None),
        ("symlink-to-folder", real + (("symlink", "lnk.out", "realdir"),), "lnk.out", "error",
         (), ("lnk.out",), (1, 2), None),
        ("symlink-dangling", (("symlink", "lnk.out", "nowhere.out"),), "lnk.out", "either",
         ("nowhere.out",), ("lnk.out",), (1, 2), None),
        ("readonly-parent", (("file", "ro/keep.txt", "x\n"), ("immutable", "ro")), "ro/x.out",
         "error", (), (), (1, 2), None),
        ("readonly-file", (("file", "ro.out", "mine\n"), ("immutable", "ro.out")), "ro.out",
         "error", (), (), (1, 2), None),
        ("through-a-file", (("file", "afile.txt", "x\n"),), "afile.txt/x.out", "error", (), (),
         (1, 2), None),
        ("missing-parent", (), "nope/x.out", "error", (), (), (1, 2), None),
        ("name-255", (), "d" * 251 + ".out", "either", ("d" * 251 + ".out",), (), (1, 2), None),
        ("name-245", (), "e" * 241 + ".out", "either", ("e" * 241 + ".out",), (), (1, 2), None),
        ("name-256", (), "f" * 252 + ".out", "error", (), (), (1, 2), None),
        ("name-newline", (), "x\ny.out", "either", ("x\ny.out",), (), (1, 2), None),
        ("empty", (), "", "error", (), (), (1, 2), None),
        ("dot", user, ".", "error", (), (), (1, 2), None),
        ("dotdot", user + (("dir", "sub"),), "..", "error", (), (), (1, 2), None),
        ("fifo", (("fifo", "out.fifo"),), "out.fifo", "error", (), ("out.fifo",), (1, 2),
         SHORT_TIMEOUT),
    ]
    for cmd, make in FILE_CMDS.items():
        for name, setup, out, expect, outputs, through, codes, tmo in file_kinds:
            if cmd == "export-sbml" and name in ("name-245", "name-newline", "dotdot",
                                                 "symlink-dangling", "missing-parent", "dot",
                                                 "through-a-file", "readonly-file", "name-255",
                                                 "empty", "readonly-parent"):
                continue
            cases.append(Case(c, f"dl-{cmd}-{name}", make(out), setup=setup, expect=expect,
                              outputs=outputs, through=through, codes=codes, timeout=tmo,
                              cwd="sub" if name == "dotdot" else "."))
    # the output is one of the inputs
    toml = '[[regimen]]\ntext = "1000 mcg IM monthly"\n'
    ptoml = '[[patient]]\npreset = "healthy"\n'
    cases += [
        Case(c, "dl-simulate-out-is-regimen-file", ["simulate", "--regimen", "r.toml", "--days",
                                                    "3", "--out", "r.toml"],
             setup=(("file", "r.toml", toml),), expect="error", codes=(1, 2),
             note="overwriting an input is data loss"),
        Case(c, "dl-simulate-out-is-patient-file", sim(R_OK, "--patient", "p.toml", "--out",
                                                       "p.toml"),
             setup=(("file", "p.toml", ptoml),), expect="error", codes=(1, 2)),
        Case(c, "dl-export-out-is-regimen-file", ["export-sbml", "--regimen", "r.toml", "--out",
                                                  "r.toml"],
             setup=(("file", "r.toml", toml),), expect="error", codes=(1, 2)),
        Case(c, "dl-compare-out-holds-regimen-file", ["compare", "--regimen", "in/r.toml",
                                                      "--patient", "healthy", "--days", "2",
                                                      "--out", "in"],
             setup=(("file", "in/r.toml", toml),), expect="either", outputs=("in",),
             codes=(1, 2)),
    ]
    return cases


STALE = {
    "compare": (("dir", ".rep.tmp-ab12cd34"), ("file", ".rep.tmp-ab12cd34/summary.csv", "x\n"),
                ("dir", ".rep.old-ef56gh78"), ("file", ".rep.old-ef56gh78/run.json", "{}\n")),
    "population": (("dir", ".rep.tmp-ab12cd34"), ("file", ".rep.tmp-ab12cd34/bands.csv", "x\n"),
                   ("dir", ".b12pk-trajectories-ab12cd34"),
                   ("file", ".b12pk-trajectories-ab12cd34/trajectories/.part-0.parquet.tmp",
                    "x")),
}


def gen_litter() -> list[Case]:
    c = "litter"
    cases = []
    runs = {
        "compare": ["compare", "--regimen", R_OK, "--patient", "healthy", "--days", "30",
                    "--out", "rep"],
        "population": ["population", "--regimen", R_OK, "--n", "64", "--days", "60",
                       "--out", "rep"],
        "population-traj": ["population", "--regimen", R_OK, "--n", "64", "--days", "60",
                            "--trajectories", "16", "--out", "rep"],
        "evidence": ["evidence", "--ids", "C001", "--max-days", "60", "--workers", "2",
                     "--out", "rep"],
    }
    kinds = {"compare": "compare", "population": "population", "population-traj": "population",
             "evidence": "evidence"}
    triggers = {"compare": [("t", 1.0), ("t", 2.5), ("tmp", 0.0), ("tmp", 0.05), ("tmp", 0.3)],
                "population": [("t", 1.0), ("tmp", 0.0), ("tmp", 0.05), ("tmp", 0.3)],
                "population-traj": [("tmp", 0.0), ("tmp", 0.1)],
                "evidence": [("tmp", 0.0), ("tmp", 0.1)]}
    for name, argv in runs.items():
        for sig in ("SIGTERM", "SIGINT"):
            for i, (trig, delay) in enumerate(triggers[name]):
                prior = bool(i % 2)  # every other one over an earlier report, kept intact
                setup = (("report", "rep", kinds[name]),) if prior else ()
                cases.append(Case(
                    c, f"lit-{name}-{sig[3:].lower()}-{trig}{delay:g}{'-prior' if prior else ''}",
                    argv, setup=setup, signal=(sig, trig, delay), outputs=("rep",),
                    replaceable=("rep",) if prior else (), codes=(1, 2, 130, 143), timeout=90))
        for trig, delay in (("tmp", 0.0), ("t", 1.5)):
            if name in ("evidence", "population-traj") and trig == "t":
                continue
            cases.append(Case(c, f"lit-{name}-kill9-{trig}{delay:g}-rerun", argv,
                              signal=("SIGKILL", trig, delay), rerun=True, outputs=("rep",),
                              expect="ok", timeout=90))
    # stale temporaries of b12pk's naming (two days old) must go on the next run
    for name in ("compare", "population"):
        cases.append(Case(c, f"lit-stale-{name}", FOLDER_CMDS[name]("rep"),
                          setup=STALE[name] + tuple(("old", p[1]) for p in STALE[name]
                                                    if p[0] == "dir")
                          + (("file", ".rep.notes", "mine\n"),),
                          removable=tuple(p[1] for p in STALE[name] if p[0] == "dir"),
                          outputs=("rep",), expect="ok"))
    dead, alive = 2 ** 22 + 5, os.getpid()  # above any pid_max; the harness itself
    new_names = (f".rep.b12pk-tmp-{HOST}-{dead}-0123abcd", f".rep.b12pk-old-{HOST}-{dead}-4567cdef",
                 f".rep.b12pk-stage-{HOST}-{dead}-89abcdef")
    cases.append(Case(c, "lit-stale-new-naming-dead-pid", FOLDER_CMDS["compare"]("rep"),
                      setup=tuple(("dir", n) for n in new_names)
                      + (("file", f".x.csv.b12pk-tmp-{HOST}-{dead}-0123abcd", "x"),),
                      removable=new_names + (f".x.csv.b12pk-tmp-{HOST}-{dead}-0123abcd",),
                      outputs=("rep",), expect="ok",
                      note="temporaries of a process that no longer exists"))
    cases.append(Case(c, "lit-stale-new-naming-live-pid-kept", FOLDER_CMDS["compare"]("rep"),
                      setup=(("dir", f".rep.b12pk-tmp-{HOST}-{alive}-0123abcd"),
                             ("file", f".rep.b12pk-tmp-{HOST}-{alive}-0123abcd/x.csv", "x\n")),
                      outputs=("rep",), expect="ok",
                      note="a running process's temporary must not be removed"))
    cases.append(Case(c, "lit-stale-simulate", sim(R_OK, "--out", "x.csv"),
                      setup=(("file", ".x.csv.ab12cd34", "x"), ("old", ".x.csv.ab12cd34"),
                             ("file", ".x.csv.notes", "mine\n")),
                      # documented: b12pk 0.1's temporary *files* are left alone (a user may
                      # own such a name, e.g. .x.csv.backup01); they must be kept intact
                      outputs=("x.csv",), expect="ok"))
    # full disk (ulimit -f: writes fail with EFBIG) during the write
    full = {**{k: v("rep") for k, v in FOLDER_CMDS.items()},
            "simulate": sim(R_OK, "--out", "x.csv", days="400"),
            "export-sbml": FILE_CMDS["export-sbml"]("x.xml")}
    for name, argv in full.items():  # a file over the limit fails with EFBIG; smaller ones fit
        out = argv[-1]
        for kb in (1, 20):
            if kb == 1 and name in ("evidence", "validate"):
                continue
            cases.append(Case(c, f"lit-fullfs-{name}-{kb}k", argv, fsize_kb=kb, outputs=(out,),
                              codes=(1, 2)))
        if name in ("compare", "population"):
            cases.append(Case(c, f"lit-fullfs-{name}-20k-prior", argv, fsize_kb=20,
                              setup=(("report", out, name),), replaceable=(out,),
                              outputs=(out,), codes=(1, 2)))
    return cases


HUGE = {
    "int400": "1" + "0" * 400, "neg-int400": "-1" + "0" * 400, "int2p63": str(2 ** 63),
    "int2p64": str(2 ** 64), "int2p53p1": str(2 ** 53 + 1), "int1e20": "100000000000000000000",
    "f1e400": "1e400", "nan": "nan", "inf": "inf", "-inf": "-inf", "neg-zero": "-0.0",
    "denormal": "5e-324", "zero": "0", "neg1": "-1", "bool": "true", "string": '"30"',
    "array": "[1]", "date": "1979-05-27",
}
MUST_REFUSE = {"int400", "neg-int400", "int2p63", "int2p64", "int1e20", "f1e400", "nan", "inf",
               "-inf", "bool", "string", "array", "date"}


def gen_tracebacks() -> list[Case]:
    c = "tracebacks"
    cases = []
    base = {"amount_ug": "1000", "route": '"im"', "interval_days": "30", "start_day": "1",
            "n_doses": "3"}
    for field in ("amount_ug", "interval_days", "start_day", "n_doses"):
        for vname, v in HUGE.items():
            if field != "amount_ug" and vname not in ("int400", "neg-int400", "int2p63", "f1e400",
                                                      "nan", "inf", "neg1", "bool"):
                continue
            if field == "amount_ug" and vname in ("date", "array", "int1e20", "neg-zero"):
                continue
            entry = dict(base, **{field: v})
            toml = "[[regimen]]\n" + "".join(f"{k} = {x}\n" for k, x in entry.items())
            cases.append(Case(c, f"tb-toml-regimen-{field}-{vname}",
                              ["simulate", "--regimen", "r.toml", "--days", "3"],
                              setup=(("file", "r.toml", toml),),
                              expect="error" if vname in MUST_REFUSE else "either"))
    for vname in ("int400", "nan", "neg1"):
        toml = f'[[regimen]]\ntext = "1000 mcg oral daily until no further improvement"\n' \
               f"open_ended_days = {HUGE[vname]}\n"
        cases.append(Case(c, f"tb-toml-regimen-open_ended_days-{vname}",
                          ["simulate", "--regimen", "r.toml", "--days", "3"],
                          setup=(("file", "r.toml", toml),),
                          expect="error" if vname in MUST_REFUSE | {"neg1"} else "either"))
    pvals = ["int400", "int2p63", "f1e400", "nan", "neg1", "string"]
    for field in ("egfr_ml_min", "stores_ug", "serum_pmol_per_l", "intrinsic_factor",
                  "diet_ug_per_day", "ileal_resection_cm"):
        if field in ("diet_ug_per_day", "ileal_resection_cm"):
            pvals = ["int400", "nan"]
        for vname in pvals:
            toml = f'[[patient]]\nlabel = "p"\npreset = "healthy"\n{field} = {HUGE[vname]}\n'
            refuse = vname in MUST_REFUSE or (vname == "neg1")
            cases.append(Case(c, f"tb-toml-patient-{field}-{vname}",
                              sim(R_OK, "--patient", "p.toml"),
                              setup=(("file", "p.toml", toml),),
                              expect="error" if refuse else "either"))
    # integer flags of population and compare
    big = {"int400": "1" + "0" * 400, "int2p63": str(2 ** 63), "zero": "0", "neg1": "-1"}
    pop = ["population", "--regimen", R_OK, "--days", "3", "--out", "pop"]
    for flag in ("--chunk-size", "--n", "--seed", "--trajectories", "--workers"):
        for vname, v in big.items():
            argv = pop + [flag, v] + ([] if flag == "--n" else ["--n", "16"])
            refuse = vname in ("int400", "int2p63", "int2p64") or \
                (vname in ("zero", "neg1") and flag in ("--n", "--workers", "--chunk-size")) or \
                (vname == "neg1" and flag in ("--seed", "--trajectories"))
            cases.append(Case(c, f"tb-population{flag[1:]}-{vname}", argv, outputs=("pop",),
                              expect="error" if refuse else "either", timeout=60))
    for vname in ("int400", "zero"):
        cases.append(Case(c, f"tb-compare-population-{vname}",
                          FOLDER_CMDS["compare"]("rep") + ["--population", big[vname]],
                          outputs=("rep",), expect="error"))
    cases.append(Case(c, "tb-compare-seed-int400",
                      FOLDER_CMDS["compare"]("rep") + ["--population", "16", "--seed",
                                                       big["int400"]],
                      outputs=("rep",), expect="error"))
    for vname in ("int400", "zero"):
        cases.append(Case(c, f"tb-evidence-workers-{vname}",
                          FOLDER_CMDS["evidence"]("ev") + ["--workers", big[vname]],
                          outputs=("ev",), expect="error"))
    # float flags
    fvals = {"nan": "nan", "inf": "inf", "-inf": "-inf", "neg-zero": "-0", "zero": "0",
             "f1e400": "1e400", "f1e308": "1e308", "f1e-10": "1e-10", "f1e-300": "1e-300",
             "denormal": "5e-324", "neg1": "-1"}
    flags = [
        ("simulate-days", lambda v: sim(R_OK, days=v), True, ()),
        ("simulate-baseline-serum", lambda v: sim(R_OK, "--baseline-serum", v), False, ()),
        ("simulate-baseline-stores", lambda v: sim(R_OK, "--baseline-stores", v), False, ()),
        ("simulate-egfr", lambda v: sim(R_OK, "--egfr", v), False, ()),
        ("simulate-diet", lambda v: sim(R_OK, "--diet", v), False, ()),
        ("simulate-ileal-resection", lambda v: sim(R_OK, "--ileal-resection", v), False, ()),
        ("population-days", lambda v: ["population", "--regimen", R_OK, "--n", "16", "--days", v,
                                       "--out", "pop"], True, ("pop",)),
        ("export-sbml-days", lambda v: ["export-sbml", "--regimen", R_OK, "--days", v, "--out",
                                        "m.xml"], True, ("m.xml",)),
        ("export-sbml-baseline-serum", lambda v: ["export-sbml", "--baseline-serum", v, "--out",
                                                  "m.xml"], False, ("m.xml",)),
        ("compare-days", lambda v: ["compare", "--regimen", R_OK, "--patient", "healthy",
                                    "--days", v, "--out", "rep"], True, ("rep",)),
    ]
    for fname, make, is_days, outputs in flags:
        for vname, v in fvals.items():
            refuse = vname in ("nan", "NaN", "inf", "-inf", "f1e400", "f1e308", "neg1") or \
                (is_days and vname in ("zero", "neg-zero"))
            if not is_days and vname not in ("nan", "inf", "neg1"):
                continue
            if is_days and vname in ("f1e308", "denormal") and fname != "simulate-days":
                continue
            if fname == "compare-days" and vname in ("f1e308", "denormal"):
                continue
            cases.append(Case(c, f"tb-{fname}-{vname}", make(v), outputs=outputs,
                              expect="error" if refuse else "either"))
        for vname, v in (("word", "abc"), ("comma", "1,5"), ("empty", "")):
            if fname in ("simulate-days", "simulate-egfr"):
                cases.append(Case(c, f"tb-{fname}-{vname}", make(v), outputs=outputs,
                                  expect="error"))
    # library: a list of DoseEvent where a regimen is accepted, bad observation times
    ev = "DoseEvent(0.0, 1000.0, 'im', 'cyanocobalamin')"
    api = [
        ("simulate-doseevent-list", f"return len(simulate([{ev}], 'healthy', 3))", "either"),
        ("simulate-doseevent-tuple", f"return len(simulate(({ev}, {ev}), 'healthy', 3))",
         "either"),

        # documented: an empty list of doses is no treatment for simulate and to_sbml
        ("simulate-empty-list", "return len(simulate([], 'healthy', 3))", "either"),
        ("simulate-list-of-none", "return len(simulate([None], 'healthy', 3))", "error"),
        ("simulate-list-of-dicts", "return len(simulate([{'amount_ug': 1}], 'healthy', 3))",
         "error"),
        ("simulate-list-of-str", "return len(simulate(['1000 mcg IM once'], 'healthy', 3))",
         "either"),
        ("compare-doseevent-list", f"return len(compare([[{ev}]], ['healthy'], 3).summary)",
         "either"),
        ("population-doseevent-list", f"return simulate_population([{ev}], PopulationSpec("
                                      f"'healthy', 16, 0), 3).n", "either"),
        ("to_sbml-doseevent-list", f"return len(to_sbml('healthy', [{ev}], days=3))", "either"),
        ("simulate-times-string", "return len(simulate('1000 mcg IM once', 'healthy', 3, "
                                  "times='0;1;2'))", "error"),
        ("simulate-times-comma", "return len(simulate('1000 mcg IM once', 'healthy', 3, "
                                 "times=['0,5']))", "error"),
        ("simulate-times-nan", "return len(simulate('1000 mcg IM once', 'healthy', 3, "
                               "times=[0, float('nan')]))", "error"),
        ("simulate-times-past-horizon", "return len(simulate('1000 mcg IM once', 'healthy', 3, "
                                        "times=[0, 5]))", "error"),

        ("simulate-times-2d", "return len(simulate('1000 mcg IM once', 'healthy', 3, "
                              "times=[[0, 1]]))", "error"),
        ("obs-times-semicolon", f"return len(to_event_table(Regimen.parse('{R_OK}'), 60, "
                                f"observation_times='0;30'))", "error"),
        ("obs-times-comma-decimal", f"return len(to_event_table(Regimen.parse('{R_OK}'), 60, "
                                    f"observation_times=['0,5']))", "error"),
        ("obs-times-space", f"return len(to_event_table(Regimen.parse('{R_OK}'), 60, "
                            f"observation_times='0 30'))", "error"),

        ("obs-times-nan", f"return len(to_event_table(Regimen.parse('{R_OK}'), 60, "
                          f"observation_times=[float('nan')]))", "error"),
        ("obs-times-past-horizon", f"return len(to_event_table(Regimen.parse('{R_OK}'), 60, "
                                   f"observation_times=[90]))", "either"),
        ("obs-times-bytes", f"return len(to_event_table(Regimen.parse('{R_OK}'), 60, "
                            f"observation_times=b'0'))", "error"),
    ]
    for name, body, expect in api:
        cases.append(Case(c, f"tb-api-{name}", py=body, expect=expect, api_types=("TypeError",)))
    # memory: estimate before the work, refuse with a ResourceError that says so
    mem = [
        ("population-1e8-100y", ["population", "--regimen", R_OK, "--n", "100000000", "--days",
                                 "36500", "--out", "pop"], ("pop",)),
        ("population-1e7-1y", ["population", "--regimen", R_OK, "--n", "10000000", "--days",
                               "365", "--out", "pop"], ("pop",)),
        ("population-chunk-huge", ["population", "--regimen", R_OK, "--n", "100000", "--days",
                                   "3650", "--chunk-size", "100000", "--out", "pop"], ("pop",)),
        ("population-trajectories-1e6", ["population", "--regimen", R_OK, "--n", "1000000",
                                         "--days", "36500", "--trajectories", "1000000",
                                         "--out", "pop"], ("pop",)),
        ("export-sbml-36500-doses", ["export-sbml", "--regimen", "1000 mcg IM daily", "--days",
                                     "36500", "--out", "m.xml"], ("m.xml",)),
        ("export-sbml-36500-oral", ["export-sbml", "--regimen", "1000 mcg oral daily", "--days",
                                    "36500", "--out", "m.xml"], ("m.xml",)),
        ("compare-population-1e7", FOLDER_CMDS["compare"]("rep") + ["--population", "10000000"],
         ("rep",)),
        ("simulate-100y-hourly-output", ["simulate", "--regimen", "1000 mcg IM weekly",
                                         "--days", "36500", "--hourly"], ()),
    ]
    for name, argv, outputs in mem:
        cases.append(Case(c, f"tb-mem-{name}", argv, outputs=outputs, mem_limit=MEM_LIMIT,
                          codes=(2,), timeout=60))
    # standard output that cannot be written
    for name, argv in (("simulate", sim(R_OK, days="3000")), ("parameters", ["parameters"])):
        cases.append(Case(c, f"tb-stdout-closed-{name}", argv, stdout="closed", codes=(1, 2)))
        cases.append(Case(c, f"tb-stdout-full-{name}", argv, stdout="full", codes=(1, 2)))
    return cases


SCRIPTS = {"arabic-indic": 0x660, "devanagari": 0x966, "fullwidth": 0xFF10, "math-bold": 0x1D7CE}


def _digits(zero: int, s: str) -> str:
    return "".join(chr(zero + int(ch)) if ch.isdigit() else ch for ch in s)


def gen_silent() -> list[Case]:
    c = "silent-wrong"
    cases = []
    amounts = {
        "eu-thousands-1.000-mcg": ("1.000 mcg", "error"),
        "eu-thousands-2.500-mcg": ("2.500 mcg", "error"),
        "eu-thousands-10.000-mcg": ("10.000 mcg", "error"),
        "eu-thousands-1.000-mg": ("1.000 mg", "error"),

        "eu-1.000,5-mg": ("1.000,5 mg", "error"),
        "eu-1.000.000-mcg": ("1.000.000 mcg", "error"),
        "eu-decimal-comma-1,5-mg": ("1,5 mg", "error"),
        "swiss-1'000-mcg": ("1'000 mcg", "error"),
        "us-1,000.5-mcg": ("1,000.5 mcg", "either"),

        "space-1 000-mcg": ("1 000 mcg", "either"),
        "ok-1.5-mg": ("1.5 mg", "ok"),
        "ok-0.500-mg": ("0.500 mg", "ok"),

    }
    for name, (amt, expect) in amounts.items():
        cases.append(Case(c, f"sw-{name}", sim(f"{amt} oral daily"), expect=expect))
    for sname, zero in SCRIPTS.items():
        z = lambda s: _digits(zero, s)  # noqa: E731
        cases.append(Case(c, f"sw-digits-{sname}-mixed-0x5-mg", sim(f"0{z('0')}5 mg oral daily"),
                          expect="error"))
        cases.append(Case(c, f"sw-digits-{sname}-mixed-1xx0-mcg",
                          sim(f"1{z('00')}0 mcg oral daily"), expect="error"))
        cases.append(Case(c, f"sw-digits-{sname}-pure-1000-mcg", sim(f"{z('1000')} mcg oral daily"),
                          expect="either"))

    cases.append(Case(c, "sw-digits-two-scripts", sim(f"{_digits(0x660, '10')}"
                                                      f"{_digits(0x6F0, '00')} mcg oral daily"),
                      expect="error"))
    reps = {
        "100mg-IM-1000-times-daily": "100 mg IM 1000 times daily",
        "100mg-IM-2-times-daily": "100 mg IM twice daily",
        "50mg-oral-3-times-daily": "50 mg oral 3 times daily",
        "1000mcg-IM-1000-times-daily": "1000 mcg IM 1000 times daily",
        "100mg-ten-at-times-one-day": "100 mg IM at times " + ", ".join(
            f"{i / 10:g}" for i in range(10)) + " days",
        "100mg-on-days-1-1-1": "100 mg IM on days 1, 1, 1",
        "100mg-every-hour": "100 mg IM every 1 hours",
        "60mg-twice-daily": "60 mg IM twice daily",
        "100mg-daily-then-twice-daily": "100 mg IM daily for 3 days, then 100 mg IM twice "
                                        "daily for 3 days",
    }
    for name, text in reps.items():
        cases.append(Case(c, f"sw-repeat-{name}", sim(text, days="5"), expect="error"))
    cases.append(Case(c, "sw-repeat-toml-interval-0.01", ["simulate", "--regimen", "r.toml",
                                                          "--days", "3"],
                      setup=(("file", "r.toml", '[[regimen]]\namount_ug = 100000\nroute = "im"\n'
                                                'interval_days = 0.01\nn_doses = 50\n'),),
                      expect="error"))
    cases.append(Case(c, "sw-repeat-eventtable-ten-100mg",
                      py="r = read_event_table('e.csv')\nreturn {k: len(v.dose_events(5)) "
                         "for k, v in r.items()}",
                      setup=(("file", "e.csv", "ID,TIME,AMT,CMT,EVID\n" + "".join(
                          f"1,{i / 10:g},100000,3,1\n" for i in range(10))),), expect="error"))
    phases = {
        "backward-days": ("daily for days 10-20", "daily for days 5-8", "error"),
        "overlap-days": ("daily for days 1-10", "daily for days 5-15", "error"),

        "backward-from-day": ("daily from day 30 for 5 days", "daily from day 10 for 5 days",
                              "error"),
        "overlap-from-day": ("daily from day 1 for 10 days", "daily from day 5 for 5 days",
                             "error"),
        # phases of explicit days may interleave (as to_text writes from_events' doses) but
        # not run backwards, nor overlap a repeating phase
        "backward-on-days": ("on days 5, 6", "on days 1, 2", "error"),
        "backward-at-times": ("at times 5, 6 days", "at times 1 days", "error"),
        "backward-one-day": ("on day 10", "on day 5", "error"),
        "interleave-on-days": ("on days 1, 8", "on days 2, 9", "ok"),
        "overlap-repeating-then-days": ("daily for 1 week", "on days 3, 30", "error"),

        "ok-sequential": ("daily for days 1-10", "daily for days 11-20", "ok"),
        "ok-followed-by": ("daily for 7 days", "weekly for 2 weeks", "ok"),
    }
    for name, (a, b, expect) in phases.items():
        cases.append(Case(c, f"sw-then-{name}",
                          sim(f"1000 mcg IM {a}, then 1000 mcg IM {b}", days="40"),
                          expect=expect))
    cases.append(Case(c, "sw-then-three-backward",
                      sim("1000 mcg IM daily for days 20-25, then 1000 mcg IM daily for days "
                          "10-15, then 1000 mcg IM daily for days 1-5", days="40"),
                      expect="error"))
    # --seed without --population
    for seed in ("1", "0"):
        cases.append(Case(c, f"sw-compare-seed-{seed}-without-population",
                          FOLDER_CMDS["compare"]("rep") + ["--seed", seed], outputs=("rep",),
                          expect="error"))
    cases.append(Case(c, "sw-compare-covariates-without-population",
                      FOLDER_CMDS["compare"]("rep") + ["--covariates", "older-adults"],
                      outputs=("rep",), expect="error"))
    cases.append(Case(c, "sw-population-seed-with-no-variability",
                      FOLDER_CMDS["population"]("pop") + ["--seed", "7", "--no-variability"],
                      outputs=("pop",), expect="either"))
    # evidence
    ev = ["evidence", "--out", "ev"]
    for vname, v in (("nan", "nan"), ("inf", "inf"), ("zero", "0"), ("neg1", "-1"),
                     ("f1e-300", "1e-300")):
        cases.append(Case(c, f"sw-evidence-max-days-{vname}",
                          ev + ["--ids", "C001", "--max-days", v], outputs=("ev",),
                          expect="either" if vname == "f1e-300" else "error"))
    for vname, v, expect in (("comma", ",", "error"), ("commas", ",,,", "error"),
                             ("empty", "", "error"), ("space", " ", "error"),
                             ("trailing-comma", "C001,", "error"),

                             ("double-comma", "C001,,C002", "error"),
                             ("unknown", "NOPE", "error"), ("semicolon", "C001;C002", "error"),
                             ("lowercase", "c001", "either"),
                             ("duplicate", "C001,C001", "either")):
        cases.append(Case(c, f"sw-evidence-ids-{vname}", ev + ["--ids", v, "--max-days", "30"],
                          outputs=("ev",), expect=expect))
    # duplicate labels: two regimens (or patients) under one label
    two = '[[regimen]]\nlabel = "x"\ntext = "1000 mcg IM monthly"\n' \
          '[[regimen]]\nlabel = "x"\ntext = "2000 mcg oral daily"\n'
    twop = '[[patient]]\nlabel = "p"\npreset = "healthy"\n' \
           '[[patient]]\nlabel = "p"\npreset = "renal-impairment"\negfr_ml_min = 20\n'
    dup = [
        ("same-text-twice", ["--regimen", R_OK, "--regimen", R_OK, "--patient", "healthy"],
         (), "regimen"),
        ("spacing-variant", ["--regimen", R_OK, "--regimen", " 1000 mcg IM monthly ",
                             "--patient", "healthy"], (), "regimen"),
        ("toml-same-label", ["--regimen", "r.toml", "--patient", "healthy"],
         (("file", "r.toml", two),), "regimen"),
        ("toml-label-equals-text", ["--regimen", "r.toml", "--regimen", "2000 mcg oral daily",
                                    "--patient", "healthy"],
         (("file", "r.toml", '[[regimen]]\nlabel = "2000 mcg oral daily"\n'
                             'text = "1000 mcg IM monthly"\n'),), "regimen"),
        ("patient-toml-same-label", ["--regimen", R_OK, "--patient", "p.toml"],
         (("file", "p.toml", twop),), "patient"),
        ("patient-preset-and-toml-label", ["--regimen", R_OK, "--patient", "healthy",
                                           "--patient", "p.toml"],
         (("file", "p.toml", '[[patient]]\nlabel = "healthy"\npreset = "vegan"\n'),), "patient"),
    ]
    # labels reach report.md, report.html and summary.csv: control characters are refused
    for lname, lab in (("ansi", "\\u001b[2J\\u0007"), ("nul", "a\\u0000b"),
                       ("bidi", "x\\u202ey"), ("newline", "two\\nlines")):
        for kind, toml in (("regimen", f'[[regimen]]\nlabel = "{lab}"\ntext = "{R_OK}"\n'),
                           ("patient", f'[[patient]]\nlabel = "{lab}"\npreset = "healthy"\n')):
            extra = (["--regimen", "f.toml", "--patient", "healthy"] if kind == "regimen"
                     else ["--regimen", R_OK, "--patient", "f.toml"])
            cases.append(Case(c, f"sw-label-{kind}-{lname}",
                              ["compare", *extra, "--days", "2", "--out", "rep"],
                              setup=(("file", "f.toml", toml),), outputs=("rep",),
                              expect="error"))
    for name, extra, setup, col in dup:
        cases.append(Case(c, f"sw-duplicate-labels-{name}",
                          ["compare", *extra, "--days", "2", "--out", "rep"], setup=setup,
                          outputs=("rep",), check="distinct-labels"))
    # a population (or comparison) whose regimen gives no dose within the horizon
    for name, text, days in (("once-from-day-100", "1000 mcg IM once from day 100", "30"),
                             ("on-day-50", "1000 mcg IM on days 50", "10"),
                             ("at-time-20", "1000 mcg IM at times 20 days", "10"),
                             ):
        cases.append(Case(c, f"sw-no-dose-population-{name}",
                          ["population", "--regimen", text, "--n", "16", "--days", days,
                           "--out", "pop"], outputs=("pop",), expect="error"))
        cases.append(Case(c, f"sw-no-dose-simulate-{name}", sim(text, days=days),
                          expect="error"))
    cases.append(Case(c, "sw-no-dose-compare-once-from-day-100",
                      ["compare", "--regimen", "1000 mcg IM once from day 100", "--patient",
                       "healthy", "--days", "30", "--out", "rep"], outputs=("rep",),
                      expect="error"))
    cases.append(Case(c, "sw-no-dose-export-sbml-once-from-day-100",
                      ["export-sbml", "--regimen", "1000 mcg IM once from day 100", "--days",
                       "30", "--out", "m.xml"], outputs=("m.xml",), expect="error"))
    # quantiles
    for name, q, expect in (("str-50", "'50'", "error"), ("str-5,50", "'5,50'", "error"),
                            ("over-100", "[50, 150]", "error"), ("negative", "[-1, 50]", "error"),
                            ("nan", "[float('nan')]", "error"),
                            ("scalar", "50", "error"), ("bool", "[True]", "error"),
                            ("duplicate", "[50, 50]", "either"),
                            ("fraction-0.5", "[0.5]", "either")):
        cases.append(Case(c, f"sw-api-quantiles-{name}",
                          py=f"r = simulate_population('{R_OK}', PopulationSpec('healthy', 16, 0),"
                             f" 3, quantiles={q})\nreturn list(r.quantiles.columns)",
                          expect=expect, api_types=("TypeError",)))
    return cases


def gen_hangs() -> list[Case]:
    c = "hangs"
    cases = []
    fifo_runs = {
        "simulate-regimen": (["simulate", "--regimen", "r.toml", "--days", "3"], "r.toml"),
        "compare-regimen": (["compare", "--regimen", "r.toml", "--patient", "healthy", "--days",
                             "2", "--out", "rep"], "r.toml"),
        "population-regimen": (["population", "--regimen", "r.toml", "--n", "16", "--days", "3",
                                "--out", "pop"], "r.toml"),

        "simulate-patient": (sim(R_OK, "--patient", "p.toml"), "p.toml"),

        "simulate-regimen-noext": (["simulate", "--regimen", "regimenfile", "--days", "3"],
                                   "regimenfile"),
    }
    for name, (argv, path) in fifo_runs.items():
        cases.append(Case(c, f"hang-fifo-{name}", argv, setup=(("fifo", path),), expect="error",
                          codes=(2,), timeout=SHORT_TIMEOUT, outputs=("rep", "pop", "m.xml")))
    for dev, (maj, mnr) in (("zero", (1, 5)),):
        cases.append(Case(c, f"hang-chardev-{dev}-regimen",
                          ["simulate", "--regimen", "r.toml", "--days", "3"],
                          setup=(("chardev", "r.toml", maj, mnr),), expect="error",
                          timeout=SHORT_TIMEOUT))
        cases.append(Case(c, f"hang-chardev-{dev}-patient", sim(R_OK, "--patient", "p.toml"),
                          setup=(("chardev", "p.toml", maj, mnr),), expect="error",
                          timeout=SHORT_TIMEOUT))
    for name, fn, ext in (("event-table", "read_event_table", "csv"),
                          ("load-regimens", "load_regimens", "toml")):
        cases.append(Case(c, f"hang-fifo-api-{name}", py=f"return {fn}('x.{ext}')",
                          setup=(("fifo", f"x.{ext}"),), expect="error", timeout=SHORT_TIMEOUT))
        cases.append(Case(c, f"hang-chardev-zero-api-{name}", py=f"return {fn}('x.{ext}')",
                          setup=(("chardev", f"x.{ext}", 1, 5),), expect="error",
                          timeout=SHORT_TIMEOUT))
    cases.append(Case(c, "hang-fifo-api-load-patients",
                      py="from b12pk.analysis.compare import load_patients\nreturn load_patients('p.toml')",
                      setup=(("fifo", "p.toml"),), expect="error", timeout=SHORT_TIMEOUT))
    long_runs = [
        ("simulate-hourly-IM-100y", sim("1000 mcg IM every 1 hours", days="36500"), ()),
        ("simulate-24-daily-IM-100y", sim("1000 mcg IM 24 times daily", days="36500"), ()),
        ("population-hourly-IM-100y", ["population", "--regimen", "1000 mcg IM every 1 hours",
                                       "--n", "16", "--days", "36500", "--out", "pop"],
         ("pop",)),
        ("export-sbml-hourly-IM-100y", ["export-sbml", "--regimen", "1000 mcg IM every 1 hours",
                                        "--days", "36500", "--out", "m.xml"], ("m.xml",)),

        ("simulate-4M-oral", sim("1000 mcg oral 110 times daily", days="36500"), ()),
        ("simulate-4M-oral-every", sim("10 mcg oral every 0.009125 days", days="36500"), ()),
        ("simulate-365k-oral", sim("1000 mcg oral 10 times daily", days="36500"), ()),
        ("simulate-4M-oral-toml", ["simulate", "--regimen", "r.toml", "--days", "36500"], ()),
    ]
    for name, argv, outputs in long_runs:
        setup = ()
        if name.endswith("toml"):
            setup = (("file", "r.toml", '[[regimen]]\namount_ug = 1000\nroute = "oral"\n'
                                        'interval_days = 0.009125\nn_doses = 4000000\n'),)
        cases.append(Case(c, f"hang-{name}", argv, setup=setup, outputs=outputs, timeout=60))
    cases.append(Case(c, "hang-api-eventtable-4M-addl",
                      py="r = read_event_table('e.csv')\nreturn sum(len(v.dose_events(36500)) "
                         "for v in r.values())",
                      setup=(("file", "e.csv", "ID,TIME,AMT,CMT,EVID,II,ADDL\n"
                                               "1,0,1000,1,1,0.009,3999999\n"),), timeout=60))
    # ranges expanding to 2**k variants
    def ranges(k: int) -> str:
        ph = [f"{100 * (i + 1)}-{200 * (i + 1)} mcg IM every {10 * (i + 1)}-{10 * (i + 1) + 1} "
              f"days for 2 doses" for i in range(k // 2)]
        if k % 2:
            ph.append(f"{50}-{60} mcg IM once")
        return ", then ".join(ph)
    for k in (6, 10, 20):
        toml = f'[[regimen]]\nlabel = "v"\ntext = {_toml_str(ranges(k))}\nvariants = true\n'
        cases.append(Case(c, f"hang-variants-{2 ** k}", ["compare", "--regimen", "r.toml",
                                                          "--patient", "healthy", "--days", "2",
                                                          "--out", "rep"],
                          setup=(("file", "r.toml", toml),), outputs=("rep",), timeout=60,
                          expect="error" if k > 6 else "either"))
    cases.append(Case(c, "hang-api-regimen-variants-1024",
                      py=f"return len(regimen_variants({ranges(10)!r}))", timeout=60))
    patho = {
        "repeat-number": "1 " * 4900, "open-parens": "(" * 9000, "repeat-amount":
            "1000 mcg " * 1100 + "oral daily", "repeat-every": "1000 mcg oral every " * 500,
        "many-phases": ", then ".join(
            ["1000 mcg oral daily for 1 days"] * 250), 
        "many-days": "1000 mcg IM on days " + ", ".join(str(i) for i in range(1, 2400)),
    }
    for name, text in patho.items():
        cases.append(Case(c, f"hang-parser-{name}", sim(text, days="30"), timeout=60))
    return cases


def gen_unclear() -> list[Case]:
    c = "unclear-messages"
    cases = []
    mb = 1_000_000
    big_text = "1000 mcg oral daily " + "x" * mb
    files = {
        "toml-1MB-regimen-text": ("r.toml", f"[[regimen]]\ntext = {_toml_str(big_text)}\n",
                                  ["simulate", "--regimen", "r.toml", "--days", "3"]),
        "toml-1MB-valid-words": ("r.toml", "[[regimen]]\ntext = " + _toml_str(
            "1000 mcg oral daily, " * 50_000) + "\n",
            ["simulate", "--regimen", "r.toml", "--days", "3"]),
        "toml-1MB-label": ("r.toml", f"[[regimen]]\nlabel = {_toml_str('L' * mb)}\n"
                                     f"text = \"1000 mcg IM once\"\nroute = 5\n",
                           ["simulate", "--regimen", "r.toml", "--days", "3"]),

        "toml-1MB-key": ("r.toml", f"[[regimen]]\ntext = \"1000 mcg IM once\"\n{'k' * mb} = 1\n",
                         ["simulate", "--regimen", "r.toml", "--days", "3"]),
        "toml-1MB-preset": ("p.toml", f"[[patient]]\npreset = {_toml_str('p' * mb)}\n",
                            sim(R_OK, "--patient", "p.toml")),
        "toml-1MB-syntax-error": ("r.toml", "[[regimen]]\ntext = \"" + "y" * mb + "\n",
                                  ["simulate", "--regimen", "r.toml", "--days", "3"]),

    }
    for name, (path, data, argv) in files.items():
        cases.append(Case(c, f"um-{name}", argv, setup=(("file", path, data),), expect="error"))
    kb100 = 100_000
    argvs = {
        "argv-100KB-regimen": sim("x" * kb100),
        "argv-100KB-regimen-words": sim("1000 mcg oral daily " * 5000),

        "argv-100KB-patient": sim(R_OK, "--patient", "p" * kb100),
        "argv-100KB-form": sim("1000 mcg IM once", "--form", "f" * kb100),
        "argv-100KB-ids": ["evidence", "--ids", "C" * kb100, "--max-days", "30", "--out", "ev"],
        "argv-100KB-covariate": ["population", "--regimen", R_OK, "--n", "16", "--days", "3",
                                 "--covariate", "age_years=" + "n" * kb100, "--out", "pop"],
        "argv-100KB-covariates": FOLDER_CMDS["compare"]("rep") + ["--population", "16",
                                                                  "--covariates", "s" * kb100],
        "argv-5000-char-out": FOLDER_CMDS["compare"]("o" * 5000),

        "argv-100KB-regimen-path": ["simulate", "--regimen", "d/" * 2000 + "r.toml", "--days",
                                    "3"],
    }
    for name, argv in argvs.items():
        cases.append(Case(c, f"um-{name}", argv, expect="error", codes=(1, 2),
                          outputs=("rep", "pop", "ev")))
    ctl = {"ansi-red": "\x1b[31m", "osc-title": "\x1b]0;pwned\x07", "del": "\x7f",
           "rlo": "\u202e", "c1-csi": "\x9b", "cr": "\r", "backspace": "\x08"}
    for cname, ch in ctl.items():
        cases.append(Case(c, f"um-ctl-regimen-{cname}", sim(f"1000 mcg {ch}oral daily"),
                          expect="either" if ch == "\r" else "error"))  # CR is white space
        cases.append(Case(c, f"um-ctl-patient-{cname}", sim(R_OK, "--patient", f"heal{ch}thy"),
                          expect="error"))
    for cname in ("ansi-red", "c1-csi"):
        ch = ctl[cname]
        cases += [
            Case(c, f"um-ctl-form-{cname}", sim("1000 mcg IM once", "--form", f"hydroxo{ch}"),
                 expect="error"),
            Case(c, f"um-ctl-ids-{cname}", ["evidence", "--ids", f"C001{ch}", "--max-days", "30",
                                            "--out", "ev"], outputs=("ev",), expect="error"),
            Case(c, f"um-ctl-covariate-{cname}", ["population", "--regimen", R_OK, "--n", "16",
                                                  "--days", "3", "--covariate",
                                                  f"age{ch}=normal(80, 5)", "--out", "pop"],
                 outputs=("pop",), expect="error"),
            Case(c, f"um-ctl-missing-file-{cname}", ["simulate", "--regimen", f"r{ch}.toml",
                                                     "--days", "3"], expect="error"),
            Case(c, f"um-ctl-out-missing-parent-{cname}",
                 sim(R_OK, "--out", f"no{ch}pe/x.csv"), expect="error", codes=(1, 2)),
        ]
    for cname, esc in (("nul", "\\u0000"), ("esc", "\\u001b[31m")):
        toml_cases = {
            "text": ('r.toml', f'[[regimen]]\ntext = "1000 mcg {esc}oral daily"\n'),
            "route": ('r.toml', f'[[regimen]]\namount_ug = 1000\nroute = "i{esc}m"\n'),

            "key": ('r.toml', f'[[regimen]]\ntext = "1000 mcg IM once"\n"k{esc}" = 1\n'),
            "preset": ('p.toml', f'[[patient]]\npreset = "heal{esc}thy"\n'),
        }
        for tname, (path, data) in toml_cases.items():
            argv = ["simulate", "--regimen", "r.toml", "--days", "3"] if path == "r.toml" \
                else sim(R_OK, "--patient", "p.toml")
            cases.append(Case(c, f"um-toml-{tname}-{cname}", argv, setup=(("file", path, data),),
                              expect="error"))
    cases.append(Case(c, "um-raw-nul-byte-in-toml", ["simulate", "--regimen", "r.toml", "--days",
                                                     "3"],
                      setup=(("file", "r.toml", b'[[regimen]]\ntext = "1000\x00 mcg"\n'),),
                      expect="error"))
    cases.append(Case(c, "um-raw-esc-byte-in-toml", ["simulate", "--regimen", "r.toml", "--days",
                                                     "3"],
                      setup=(("file", "r.toml", b'[[regimen]]\ntext = "1000 \x1b[31mmcg"\n'),),
                      expect="error"))
    # failures inside the write must name the user's path, not b12pk's temporaries
    for name, argv in (("compare", FOLDER_CMDS["compare"]("ro/rep")),
                       ("simulate", sim(R_OK, "--out", "ro/x.csv")),
                       ("export-sbml", FILE_CMDS["export-sbml"]("ro/m.xml"))):
        cases.append(Case(c, f"um-tempname-readonly-{name}", argv,
                          setup=(("file", "ro/keep.txt", "x\n"), ("immutable", "ro")),
                          expect="error", codes=(1, 2)))
    cases.append(Case(c, "um-tempname-simulate-out-folder", sim(R_OK, "--out", "mydata"),
                      setup=USER_FILES, expect="error", codes=(2,)))
    return cases


def _et(cid: str, text: str | bytes, expect: str, doses: int | None = None,
        ids: list | None = None, time_unit: str = "days", note: str = "") -> Case:
    body = f"r = read_event_table('e.csv', time_unit={time_unit!r})\n"
    if doses is not None:
        body += ("n = sum(len(v.dose_events(30000)) for v in r.values())\n"
                 f"assert n == {doses}, f'read {{n}} doses, expected {doses} (or a refusal)'\n")
    if ids is not None:
        body += (f"assert sorted(r) == {ids!r}, "
                 f"f'patient IDs {{sorted(r)}}, expected {ids!r} (or a refusal)'\n")
    body += "return {k: len(v.dose_events(30000)) for k, v in list(r.items())[:5]}"
    return Case("event-tables", f"et-{cid}", py=body, setup=(("file", "e.csv", text),),
                expect=expect, note=note)


def gen_event_tables() -> list[Case]:
    H = "ID,TIME,AMT,CMT,EVID\n"
    D = "1,0,1000,3,1\n1,30,1000,3,1\n"
    big = 2 ** 53
    cases = [
        _et("control", H + D, "ok", doses=2),
        _et("C-comment-row", H + "C,0,1000,3,1\n" + D, "either", doses=2),
        _et("C-comment-text", H + "C this is a comment\n" + D, "either", doses=2),
        _et("C-lowercase", H + "c,5,1000,3,1\n" + D, "either", doses=2),
        _et("C-header", "C," + H + D, "either", doses=2),
        _et("C-row-last", H + D + "C,60,1000,3,1\n", "either", doses=2),
        _et("hash-line-top", "# exported by NONMEM\n" + H + D, "either", doses=2),
        _et("hash-line-middle", H + "1,0,1000,3,1\n# a note\n1,30,1000,3,1\n", "either", doses=2),
        _et("hash-header", "#" + H + D, "either", doses=2),
        _et("hash-trailing", H + "1,0,1000,3,1 # first\n1,30,1000,3,1\n", "either", doses=2),
        _et("at-comment-row", H + "@,0,1000,3,1\n" + D, "either", doses=2),
        _et("dup-column-AMT", "ID,TIME,AMT,AMT,CMT,EVID\n1,0,1000,5,3,1\n", "error"),
        _et("dup-column-case", "ID,TIME,AMT,CMT,EVID,id\n1,0,1000,3,1,2\n", "error"),
        _et("dup-column-TIME", "ID,TIME,AMT,CMT,EVID,TIME\n1,0,1000,3,1,9\n", "error"),
        _et("dup-column-space", "ID,TIME,AMT,CMT,EVID, AMT\n1,0,1000,3,1,5\n", "error"),
        _et("ids-above-2p53", H + f"{big + 1},0,1000,3,1\n{big + 2},0,1000,3,1\n", "either",
            ids=[big + 1, big + 2]),
        _et("ids-2p53-and-2p53p1", H + f"{big},0,1000,3,1\n{big + 1},0,1000,3,1\n", "either",
            ids=[big, big + 1]),
        _et("id-2p63", H + f"{2 ** 63},0,1000,3,1\n", "either", ids=[2 ** 63]),
        _et("id-1e400", H + "1" + "0" * 400 + ",0,1000,3,1\n", "error"),
        _et("id-1e20-float", H + "1e20,0,1000,3,1\n", "error"),
        _et("id-1.5", H + "1.5,0,1000,3,1\n", "error"),
        _et("id-negative", H + "-1,0,1000,3,1\n", "error"),
        _et("id-zero", H + "0,0,1000,3,1\n", "either"),
        _et("id-nan", H + "nan,0,1000,3,1\n", "error"),
        _et("id-text", H + "abc,0,1000,3,1\n", "error"),
        _et("id-01-and-1", H + "01,0,1000,3,1\n1,30,1000,3,1\n", "either", doses=2),
        _et("amt-underscore", H + "1,0,1_000,3,1\n", "error"),
        _et("amt-quoted-comma", H + '1,0,"1,000",3,1\n', "error"),
        _et("amt-1e400", H + "1,0,1e400,3,1\n", "error"),
        _et("amt-int400", H + "1,0,1" + "0" * 400 + ",3,1\n", "error"),
        _et("amt-nan", H + "1,0,nan,3,1\n", "error"),
        _et("amt-neg-zero", H + "1,0,-0,3,1\n", "error"),
        _et("amt-hex", H + "1,0,0x10,3,1\n", "error"),
        _et("amt-fullwidth", H + "1,0,１０００,3,1\n", "either", doses=1),
        _et("amt-mixed-digits", H + "1,0,1٠00,3,1\n", "error"),
        _et("amt-eu-thousands", H + "1,0,1.000,3,1\n", "either", doses=1),
        _et("amt-over-limit", H + "1,0,100001,3,1\n", "error"),
        _et("time-nan", H + "1,nan,1000,3,1\n", "error"),
        _et("time-negative", H + "1,-1,1000,3,1\n", "error"),
        _et("time-1e400", H + "1,1e400,1000,3,1\n", "error"),
        _et("time-int400", H + "1,1" + "0" * 400 + ",1000,3,1\n", "error"),
        _et("time-backwards", H + "1,30,1000,3,1\n1,0,1000,3,1\n", "error"),
        _et("addl-int400", "ID,TIME,AMT,CMT,EVID,II,ADDL\n1,0,1000,3,1,30,1" + "0" * 400 + "\n",
            "error"),
        _et("addl-1e400", "ID,TIME,AMT,CMT,EVID,II,ADDL\n1,0,1000,3,1,30,1e400\n", "error"),
        _et("addl-negative", "ID,TIME,AMT,CMT,EVID,II,ADDL\n1,0,1000,3,1,30,-1\n", "error"),
        _et("addl-fraction", "ID,TIME,AMT,CMT,EVID,II,ADDL\n1,0,1000,3,1,30,1.5\n", "error"),
        _et("addl-without-ii", "ID,TIME,AMT,CMT,EVID,II,ADDL\n1,0,1000,3,1,0,5\n", "error"),
        _et("ii-nan", "ID,TIME,AMT,CMT,EVID,II,ADDL\n1,0,1000,3,1,nan,5\n", "error"),
        _et("addl-over-limit", "ID,TIME,AMT,CMT,EVID,II,ADDL\n1,0,1000,1,1,0.001,5000000\n",
            "error"),
        _et("evid-2", H + "1,0,1000,3,2\n", "error"),
        _et("evid-4", H + "1,0,1000,3,4\n", "error"),
        _et("evid-1.0", H + "1,0,1000,3,1.0\n", "either", doses=1),
        _et("ss-1", "ID,TIME,AMT,CMT,EVID,SS\n1,0,1000,3,1,1\n", "error"),
        _et("rate-5", "ID,TIME,AMT,CMT,EVID,RATE\n1,0,1000,4,1,5\n", "error"),
        _et("cmt-9", H + "1,0,1000,9,1\n", "error"),
        _et("ten-100mg-one-day", H + "".join(f"1,{i / 10:g},100000,3,1\n" for i in range(10)),
            "error"),
        _et("same-time-duplicates", H + "1,0,100000,3,1\n1,0,100000,3,1\n", "error"),
        _et("unbalanced-quote", H + '1,"0,1000,3,1\n1,30,1000,3,1\n', "error"),
        _et("extra-field", H + "1,0,1000,3,1,9\n", "error"),
        _et("missing-field", H + "1,0,1000,3\n", "error"),
        _et("crlf", (H + D).replace("\n", "\r\n"), "either", doses=2),
        _et("bom", "\ufeff" + H + D, "either", doses=2),
        _et("tabs", (H + D).replace(",", "\t"), "either", doses=2),
        _et("semicolons", (H + D).replace(",", ";"), "either", doses=2),
        _et("semicolon-decimal-comma", "ID;TIME;AMT;CMT;EVID\n1;0,5;1000;3;1\n", "either",
            note="TIME 0,5 must be 0.5 or refused, never 5 or 0"),
        _et("blank-lines", H + "\n\n" + D + "\n\n", "either", doses=2),
        _et("header-only", H, "error"),
        _et("empty", "", "error"),
        _et("only-newlines", "\n\n\n", "error"),
        _et("binary", bytes(range(256)) * 4, "error"),
        _et("utf16", (H + D).encode("utf-16"), "either", doses=2),
        _et("latin1", (H + "1,0,1000,3,1\n").encode() + b"\xe9\n", "error"),
        _et("1MB-cell", H + "1,0," + "9" * 1_000_000 + ",3,1\n", "error"),
        _et("1MB-junk-column", H.strip() + "," + "X" * 1_000_000 + "\n1,0,1000,3,1,1\n",
            "either"),
        _et("quoted-newline", H + '1,0,"10\n00",3,1\n', "error"),
        _et("hours-time-8", H + "1,8,1000,3,1\n", "either", doses=1, time_unit="hours"),
        _et("hours-nan-unit", H + D, "error", time_unit="fortnights"),
    ]
    drop = {"C-lowercase", "C-row-last", "hash-trailing", "at-comment-row", "dup-column-space",
            "id-text", "id-nan", "amt-neg-zero", "amt-hex", "amt-int400", "time-int400",
            "addl-1e400", "ii-nan", "evid-4", "only-newlines", "latin1", "crlf", "blank-lines",
            "id-zero", "cmt-9"}
    cases = [k for k in cases if k.id[3:] not in drop]
    cases.append(Case("event-tables", "et-dataframe-dup-columns",
                      py="import pandas as pd\ndf = pd.DataFrame([[1, 0, 1000, 1000, 3, 1]], "
                         "columns=['ID', 'TIME', 'AMT', 'AMT', 'CMT', 'EVID'])\n"
                         "return read_event_table(df)", expect="error"))
    cases.append(Case("event-tables", "et-dataframe-object-nan",
                      py="import pandas as pd\ndf = pd.DataFrame({'ID': [1], 'TIME': [None], "
                         "'AMT': ['1000'], 'CMT': [3], 'EVID': [1]})\nreturn read_event_table(df)",
                      expect="error"))
    cases.append(Case("event-tables", "et-dataframe-id-float-2p53",
                      py=f"import pandas as pd\ndf = pd.DataFrame({{'ID': [{big + 1}, {big + 2}], "
                         "'TIME': [0, 0], 'AMT': [1000, 1000], 'CMT': [3, 3], 'EVID': [1, 1]})\n"
                         f"r = read_event_table(df)\nassert sorted(r) == [{big + 1}, {big + 2}],"
                         " f'IDs {sorted(r)}'\nreturn sorted(r)", expect="either"))
    cases.append(Case("event-tables", "et-not-a-path",
                      py="return read_event_table(12345)", expect="error",
                      api_types=("TypeError",)))
    cases.append(Case("event-tables", "et-folder", py="return read_event_table('d')",
                      setup=(("dir", "d"),), expect="error"))
    cases.append(Case("event-tables", "et-missing", py="return read_event_table('nope.csv')",
                      expect="error"))
    return cases


def gen_bad_toml() -> list[Case]:
    c = "bad-toml"
    reg = ["simulate", "--regimen", "r.toml", "--days", "3"]
    pat = sim(R_OK, "--patient", "p.toml")
    R = '[[regimen]]\ntext = "1000 mcg IM monthly"\n'
    regimen_files = {
        "empty": "", "bom-only": "\ufeff", "whitespace": "   \n\t\n", "comment-only": "# x\n",
        "duplicate-key": R + 'text = "2000 mcg oral daily"\n',
        "unclosed-table": "[[regimen]\ntext = \"x\"\n", "no-value": "[[regimen]]\ntext = \n",
        "unterminated-string": '[[regimen]]\ntext = "1000 mcg\n',
        "table-twice": "[regimen]\ntext = \"1000 mcg IM once\"\n[regimen]\ntext = \"x\"\n",
        "table-and-array": "[regimen]\ntext = \"1000 mcg IM once\"\n[[regimen]]\ntext = \"x\"\n",
        "regimen-int": "regimen = 5\n", "regimen-str": 'regimen = "1000 mcg IM once"\n',
        "regimen-empty-array": "regimen = []\n", "regimen-array-of-int": "regimen = [1, 2]\n",
        "text-int": "[[regimen]]\ntext = 5\n", "text-array": '[[regimen]]\ntext = ["a"]\n',
        "text-empty": '[[regimen]]\ntext = ""\n', "text-table": "[[regimen]]\n[regimen.text]\n",
        "label-int": '[[regimen]]\nlabel = 5\ntext = "1000 mcg IM once"\n',
        "variants-str": R + 'variants = "yes"\n', "variants-int": R + "variants = 1\n",
        "unknown-key": R + 'colour = "red"\n', "nested-table": R + "[regimen.sub]\nx = 1\n",
        "text-and-fields": R + "amount_ug = 1000\nroute = \"im\"\n",
        "fields-no-route": "[[regimen]]\namount_ug = 1000\n",
        "fields-no-amount": '[[regimen]]\nroute = "im"\n',
        "route-int": "[[regimen]]\namount_ug = 1000\nroute = 5\n",
        "route-unknown": '[[regimen]]\namount_ug = 1000\nroute = "rectal"\n',
        "form-unknown": '[[regimen]]\namount_ug = 1000\nroute = "im"\nform = "adenosyl?"\n',
        "two-regimens-for-simulate": R + R,
        "wrong-top-table": '[[regimens]]\ntext = "1000 mcg IM once"\n',
        "patient-file-as-regimen": '[[patient]]\npreset = "healthy"\n',
        "deep-array-5000": "x = " + "[" * 5000 + "]" * 5000 + "\n" + R,
        "deep-inline-table-3000": "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n" + R,
        "long-line-5MB": R + "# " + "c" * 5_000_000 + "\n",
        "many-entries-20000": R * 20000,
        "invalid-escape": '[[regimen]]\ntext = "1000 \\q mcg"\n',
        "surrogate-escape": '[[regimen]]\ntext = "1000 \\uD800 mcg"\n',
        "crlf": R.replace("\n", "\r\n"), "lone-cr": R.replace("\n", "\r"),
        "datetime-text": "[[regimen]]\ntext = 1979-05-27T07:32:00Z\n",
    }
    for k in ("whitespace", "no-value", "table-and-array", "regimen-empty-array", "text-table",
              "label-int", "variants-int", "nested-table", "fields-no-amount", "route-int",
              "form-unknown", "wrong-top-table", "invalid-escape", "lone-cr", "crlf",
              "regimen-array-of-int"):
        del regimen_files[k]
    cases = []
    okish = {"crlf", "long-line-5MB"}
    for name, data in regimen_files.items():
        expect = "either" if name in okish or name == "many-entries-20000" else "error"
        cases.append(Case(c, f"bt-regimen-{name}", reg, setup=(("file", "r.toml", data),),
                          expect=expect, timeout=60))
    binaries = {
        "utf16": R.encode("utf-16"), "utf16-no-bom": R.encode("utf-16-le"),
        "latin1": b'[[regimen]]\ntext = "1000 \xb5g IM once"\n', "random": bytes(
            (i * 7919 + 13) % 256 for i in range(4096)), "nul-middle": R.encode() + b"\x00\n",
        "gzip-magic": b"\x1f\x8b\x08\x00" + b"\x00" * 100, "over-10MB": b"# " + b"x" * 10_500_000
        + b"\n" + R.encode(), "under-10MB": b"# " + b"x" * 9_900_000 + b"\n" + R.encode(),
    }
    for name, data in binaries.items():
        cases.append(Case(c, f"bt-regimen-{name}", reg, setup=(("file", "r.toml", data),),
                          expect="either" if name == "under-10MB" else "error", timeout=60))
    for name, setup, arg in (
            ("folder", (("dir", "r.toml"),), "r.toml"),
            ("missing", (), "r.toml"),
            ("symlink-loop", (("symlink", "r.toml", "r.toml"),), "r.toml"),
            ("dangling-symlink", (("symlink", "r.toml", "gone.toml"),), "r.toml"),

            ("dir-slash", (("dir", "d"),), "d/"),
            ("path-through-file", (("file", "f", "x"),), "f/r.toml"),
            ("immutable-readable", (("file", "r.toml", R), ("immutable", "r.toml")), "r.toml")):
        cases.append(Case(c, f"bt-regimen-path-{name}", ["simulate", "--regimen", arg, "--days",
                                                         "3"], setup=setup,
                          expect="ok" if name == "immutable-readable" else "error",
                          codes=(2,)))
    P = '[[patient]]\npreset = "healthy"\n'
    patient_files = {
        "empty": "", "no-preset": "[[patient]]\nlabel = \"x\"\n",
        "preset-unknown": '[[patient]]\npreset = "martian"\n', "preset-int": "[[patient]]\n"
                                                                             "preset = 5\n",
        "overrides-int": P + "overrides = 5\n", "overrides-unknown": P + "overrides = {nope = 1}\n",
        "overrides-str": P + 'overrides = {passive_fraction = "x"}\n',
        "overrides-nan": P + "overrides = {passive_fraction = nan}\n",
        "overrides-huge": P + "overrides = {passive_fraction = 1" + "0" * 400 + "}\n",
        "label-array": P + "label = [1]\n", "two-tables": P + P, "egfr-str": P + 'egfr_ml_min = '
                                                                                '"20"\n',
        "metformin-str": P + 'metformin = "yes"\n',
        "unknown-key": P + 'colour = "red"\n', "duplicate-key": P + 'preset = "vegan"\n',
        "deep-array": "x = " + "[" * 5000 + "]" * 5000 + "\n" + P,
        "regimen-file-as-patient": R,
        "nested-patient-table": P + "[patient.overrides]\npassive_fraction = 0.01\n",
    }
    for name, data in patient_files.items():
        expect = "either" if name in ("nested-patient-table",) else "error"
        cases.append(Case(c, f"bt-patient-{name}", pat, setup=(("file", "p.toml", data),),
                          expect=expect))
    cases.append(Case(c, "bt-patient-binary", pat, setup=(("file", "p.toml", b"\x00\xff" * 50),),
                      expect="error"))
    cases.append(Case(c, "bt-patient-over-10MB", pat,
                      setup=(("file", "p.toml", b"#" * 10_500_000),), expect="error"))
    cases.append(Case(c, "bt-patient-folder", pat, setup=(("dir", "p.toml"),), expect="error"))
    return cases


GENERATORS = {
    "control": gen_control, "data-loss": gen_data_loss, "litter": gen_litter,
    "tracebacks": gen_tracebacks, "silent-wrong": gen_silent, "hangs": gen_hangs,
    "unclear-messages": gen_unclear, "event-tables": gen_event_tables, "bad-toml": gen_bad_toml,
}


def all_cases() -> list[Case]:
    cases = [case for gen in GENERATORS.values() for case in gen()]
    seen = collections.Counter(case.id for case in cases)
    dup = [k for k, n in seen.items() if n > 1]
    if dup:
        raise SystemExit(f"duplicate case ids: {dup[:10]}")
    return cases


# -- post-checks that read the sandbox ---------------------------------------------------------

def _read_labels(work: Path, case: Case) -> list | None:
    """The (patient, regimen) label pairs of a comparison's summary.csv."""
    import csv
    try:
        with open(work / case.outputs[0] / "summary.csv", newline="", encoding="utf-8") as f:
            return [(r.get("patient"), r.get("regimen")) for r in csv.DictReader(f)]
    except OSError:
        return None


# -- main ---------------------------------------------------------------------------------------

def _signature(r: dict) -> str:
    d = r.get("detail") or ""
    o = r["outcome"]
    if o == "traceback":
        return f"traceback: {re.split(r'[:(]', d, 1)[0][:60]}"
    if o == "user-file-lost-or-changed":
        first = re.sub(r"^.*?(lost|became|changed)", r"\1", d.split(";")[0])
        return f"{o}: {first[:50]}"
    if o == "litter":
        first = re.sub(r"[a-z0-9_]{8}", "*", d.split(";")[0])
        return f"litter: {first[:70]}"
    if o == "multi-line-or-huge-error":
        return f"{o}: {d.split(':')[0][:40]}"
    return o


def main(argv: list[str] | None = None) -> int:
    global PREBUILT, MPLDIR
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", help=f"comma-separated classes (default all: "
                                      f"{','.join(GENERATORS)})")
    ap.add_argument("--case", action="append", help="only case ids matching this glob "
                                                    "(repeatable)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    ap.add_argument("--jobs", type=int, default=2, help="cases at once (default 2)")
    ap.add_argument("--json", help="write every result to this JSON file")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--show", help="print one case's reproduction and exit")
    ap.add_argument("--keep", action="store_true", help="keep the sandboxes of failing cases")
    ap.add_argument("--max-line", type=int, default=MAX_LINE,
                    help=f"longest accepted error line (default {MAX_LINE})")
    args = ap.parse_args(argv)

    cases = all_cases()
    if args.classes:
        want = [s.strip() for s in args.classes.split(",") if s.strip()]
        bad = [w for w in want if w not in GENERATORS]
        if bad:
            ap.error(f"unknown classes {bad}; known: {', '.join(GENERATORS)}")
        cases = [k for k in cases if k.cls in want]
    if args.case:
        cases = [k for k in cases if any(fnmatch.fnmatchcase(k.id, g) for g in args.case)]
    if args.show:
        for k in all_cases():
            if k.id == args.show:
                print(f"{k.cls} {k.id} (expect {k.expect}, exit {'/'.join(map(str, k.codes))})")
                print(k.repro())
                return 0
        print(f"no case {args.show!r}", file=sys.stderr)
        return 2
    if args.list:
        for k in cases:
            what = shlex.join(["b12pk", *k.argv]) if k.argv is not None else "python: " + k.py
            print(f"{k.cls:17s} {k.id:55s} {k.expect:6s} {_clip(ascii(what)[1:-1], 100)}")
        print(f"{len(cases)} cases")
        return 0

    root = Path(tempfile.mkdtemp(prefix="b12pk-fuzz-cli-"))
    MPLDIR = root / "mplconfig"
    MPLDIR.mkdir()
    PREBUILT = Prebuilt(root)
    t0 = time.monotonic()
    print(f"b12pk fuzz_cli: {len(cases)} cases, {args.jobs} at once, timeout {args.timeout:g} s, "
          f"sandboxes in {root}", flush=True)
    results: list[dict] = []
    # the slow ones first, so that the pool ends evenly
    order = sorted(cases, key=lambda k: -(k.timeout or 0) - (5 if k.signal else 0)
                   - (5 if k.argv and k.argv[0] in ("compare", "evidence") else 0))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
    futs = {pool.submit(run_case, k, root, args.timeout, args.keep, args.max_line): k
            for k in order}
    try:
        for i, fut in enumerate(concurrent.futures.as_completed(futs), 1):
            r = fut.result()
            results.append(r)
            if r["outcome"] != "ok":
                print(f"  [{i}/{len(cases)} {time.monotonic() - t0:5.0f}s] {r['class']} "
                      f"{r['id']}: {r['outcome']}: {_clip(r.get('detail') or '', 120)}",
                      flush=True)
            elif i % 50 == 0:
                print(f"  [{i}/{len(cases)} {time.monotonic() - t0:5.0f}s]", flush=True)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        raise
    pool.shutdown()
    elapsed = time.monotonic() - t0
    order_ids = {k.id: i for i, k in enumerate(cases)}
    results.sort(key=lambda r: order_ids[r["id"]])

    classes = list(dict.fromkeys(r["class"] for r in results))
    outs = [o for o in OUTCOMES + ("harness-error",) if any(r["outcome"] == o for r in results)]
    counts = collections.Counter((r["class"], r["outcome"]) for r in results)
    short = {o: o.replace("user-file-lost-or-changed", "file-lost").replace(
        "multi-line-or-huge-error", "multiline").replace("unclear-message", "unclear")
        .replace("silent-accept", "silent").replace("crash-signal", "signal")
        .replace("harness-error", "harness") for o in outs}
    w = max(len(k) for k in classes + ["total"])
    print()
    print(f"{'class':{w}s} " + " ".join(f"{short[o]:>9s}" for o in outs) + f" {'cases':>6s}")
    for cl in classes + ["total"]:
        row = [sum(n for (c2, o2), n in counts.items() if (cl == "total" or c2 == cl) and o2 == o)
               for o in outs]
        print(f"{cl:{w}s} " + " ".join(f"{n:9d}" for n in row) + f" {sum(row):6d}")
    failing = [r for r in results if r["outcome"] != "ok"]
    print(f"\n{len(results)} cases in {elapsed:.0f} s: {len(results) - len(failing)} ok, "
          f"{len(failing)} failing")
    if PREBUILT.notes:
        print("note: " + "; ".join(PREBUILT.notes))
    if failing:
        print("\nfailing cases:")
        for r in failing:
            print(f"  {r['class']:17s} {r['id']:52s} {r['outcome']:26s} "
                  f"{_clip(r.get('detail') or '', 110)}")
        print("\nfailures by signature:")
        sig = collections.defaultdict(list)
        for r in failing:
            sig[_signature(r)].append(r["id"])
        for s, ids in sorted(sig.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(ids):4d}  {s}  e.g. {ids[0]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"elapsed_s": round(elapsed, 1), "results": results},
                                              indent=1, ensure_ascii=True) + "\n")
        print(f"\nwrote {args.json}")
    if not any(r.get("sandbox") for r in results):
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
