"""Every output cqsignal writes: whole files, whole folders, a manifest, and one run at a time.

One home for writes that a reader or a later run relies on:

- :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json`, and
  :func:`atomic_path` for writers that want a path (pandas, matplotlib, SB3): a temporary
  file beside the target with a unique name (``.NAME.tmp-<pid>-<random><suffix>``), the
  same mode for every file (``0o666`` less the umask, like any file a program creates),
  flushed to disk and renamed over the target. A reader sees the old file or the new one.
- :func:`staged_output`: an output *folder* (``simulate``, ``plan``, ``calibrate``,
  ``bench``) is built in ``DEST.tmp-<pid>-<random>`` beside ``DEST``, gets a
  ``manifest.json`` (every file with its sha256, the inputs' sha256, the options, the code
  version, the time it completed) and replaces ``DEST`` in one step: Linux's
  ``renameat2(RENAME_EXCHANGE)`` swaps the two folders atomically; where the file system
  cannot, ``DEST`` is renamed to ``DEST.old-<pid>-<random>`` and the new folder into its
  place (between the two renames ``DEST`` is briefly absent, never mixed). The next run
  into ``DEST`` recovers from a kill at any moment: a complete staging folder (one with its
  manifest) or the aside folder is put back where ``DEST`` is missing, and leftovers of
  dead runs are removed.
- :func:`publish_file_set`: files that must change together but share a folder with
  others (a model's ``X.zip`` and its ``X.meta.json``). The set is staged, committed by
  one rename of its staging folder, then moved into place seal last (the meta file, which
  makes the set valid, is removed first and written last), so a reader sees the old set,
  the new set, or a set without its seal (refused as incomplete), never a mix; the next
  writer or reader (:func:`recover_file_set`) completes a committed set.
- :class:`OutputLock`: ``DEST.lock`` beside ``DEST`` holds the pid and host of the run
  writing there, under an ``flock`` the kernel releases when that process dies (kill -9
  included), so a second run into the same ``DEST`` refuses in one line and a lock left
  by a killed run is recognised as stale and taken over.
- :func:`check_out`: ``--out`` that is a file, not writable, in use, or a folder of
  someone else's files is refused in one line before any work starts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
_CHUNK = 1 << 20


# -- file mode and names -----------------------------------------------------------------
def _umask() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no /proc: read it by setting it (at import, before any thread)
    os.umask(old)
    return old


FILE_MODE = 0o666 & ~_umask()  # what open() gives an ordinary file; mkstemp's 0600 is never kept


def _token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _pid_of(name: str, marker: str) -> int | None:
    """The pid in ``<...><marker><pid>-<random>...``, if the name has one."""
    _, sep, rest = name.rpartition(marker)
    if not sep:
        return None
    head = rest.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, Linux), to tell a reused pid from its holder."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


# -- single files -------------------------------------------------------------------------
def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _clean_temps(path: Path) -> None:
    """Remove temporaries of ``path`` left by writers that were killed (their pid is gone)."""
    marker = f".{path.name}.tmp-"
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(marker):
            pid = _pid_of(entry.name, ".tmp-")
            if pid is not None and pid != os.getpid() and not pid_alive(pid):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path`` (same suffix, so writers that go by
    the extension work); it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_temps(path)
    tmp = path.with_name(f".{path.name}.tmp-{_token()}{path.suffix}")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{tmp}: the writer did not create it")
        os.chmod(tmp, FILE_MODE)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a reader never sees half a file; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = 2, sort_keys: bool = True) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


# -- hashes and code version -----------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=4096)
def _sha_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's contents (cached while its size and mtime stay the same)."""
    st = os.stat(path)
    return _sha_cached(str(path), st.st_size, st.st_mtime_ns)


def file_hashes(paths: Iterable[str | Path]) -> dict[str, str]:
    """``{absolute path: sha256}`` of every file in ``paths`` (in order, once each)."""
    out: dict[str, str] = {}
    for p in paths:
        if p is None:
            continue
        p = Path(p).resolve()
        if str(p) not in out and p.is_file():
            out[str(p)] = file_digest(p)
    return out


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """The package version and, when the code runs from a git checkout, its commit."""
    import subprocess

    import engine

    out = {"cqsignal": engine.__version__}
    root = Path(engine.__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                 timeout=5)
            if res.returncode == 0 and res.stdout.strip():
                out["commit"] = res.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def content_key(files: Mapping[str, str] | Iterable[str | Path], options: Any = None) -> str:
    """One hash of input files' contents, options and the code version (a resume key)."""
    hashes = files if isinstance(files, Mapping) else file_hashes(files)
    blob = json.dumps({"files": sorted(hashes.values()), "options": options, "code": code_version()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def scenario_files(scenario) -> list[Path]:
    """The files a :class:`engine.scenario.Scenario` reads: network, routes, additional, demand."""
    files = [scenario.net_file, *scenario.route_files, *scenario.additional_files]
    if scenario.demand_file is not None:
        files.append(scenario.demand_file)
    return [Path(f) for f in files]


def model_files(spec: str | Path | None) -> list[Path]:
    """A model's zip and meta file, when ``spec`` names a model file (not a heuristic)."""
    if spec is None:
        return []
    text = str(spec)
    base = text[:-4] if text.endswith(".zip") else text
    files = [Path(base + ".zip"), Path(base + ".meta.json")]
    return [f for f in files if f.is_file()]


def namespace_options(args: Any) -> dict[str, Any]:
    """A command's parsed options as plain values, for a manifest."""
    out = {}
    for key, value in sorted(vars(args).items()):
        if key == "func" or callable(value):
            continue
        if isinstance(value, (tuple, set)):
            value = list(value)
        out[key] = value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -- checking --out --------------------------------------------------------------------------
def _probe_writable(folder: Path) -> str | None:
    """None if a file can be created and removed in ``folder``, else the reason."""
    probe = folder / f".cqsignal-probe-{_token()}"
    try:
        os.mkdir(probe)
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return None


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def check_out(dest: str | Path, known: Iterable[str] = (), *, file: bool = False, flag: str = "--out",
              lock: bool = True, command: str | None = None) -> Path:
    """Refuse, in one line, an output place that cannot work; before any work starts.

    ``dest`` is a folder that will be replaced as a whole (``file``: one file). It must
    not be a file (a folder), its parent must be writable, no other run may be writing
    it (its lock), and an existing folder must be empty, one cqsignal wrote (it has a
    ``manifest.json`` cqsignal can read) or hold only names matching ``known`` (glob
    patterns: an output of this command from before manifests): a folder of other files is
    never replaced. With ``command`` (e.g. ``"cqsignal twin"``), a folder whose manifest names
    another command is refused too: one command's outputs never replace another's.
    """
    dest = Path(dest)
    shown = f"{flag} {dest}" if flag else str(dest)
    if dest.exists():
        if file and dest.is_dir():
            raise ConfigError(f"{shown}: is a folder; give a file name")
        if not file and not dest.is_dir():
            raise ConfigError(f"{shown}: is a file, not a folder")
    anchor = _nearest_existing(dest.absolute().parent)
    if not anchor.is_dir():
        raise ConfigError(f"{shown}: {anchor} is a file, not a folder")
    reason = _probe_writable(anchor)
    if reason is not None:
        raise ConfigError(f"{shown}: cannot write in {anchor} ({reason})")
    if dest.is_dir() and not file:
        if not os.access(dest, os.W_OK | os.X_OK):
            raise ConfigError(f"{shown}: folder is not writable")
        entries = sorted(e.name for e in os.scandir(dest))
        manifest = read_manifest(dest) if MANIFEST in entries else None
        if manifest is not None and command is not None and manifest.get("command") != command:
            theirs = manifest.get("command")
            raise ConfigError(f"{shown}: holds the output of {theirs!r} (its {MANIFEST}), not of {command!r}; "
                              "choose a new or empty folder" if theirs else
                              f"{shown}: its {MANIFEST} names no command, so it is not an output of {command!r}; "
                              "choose a new or empty folder")
        if entries and manifest is None:  # no manifest, or a manifest.json cqsignal did not write
            import fnmatch

            known = list(known)
            foreign = [e for e in entries if not any(fnmatch.fnmatchcase(e, k) for k in known)]
            if foreign:
                raise ConfigError(f"{shown}: holds files cqsignal did not write there (e.g. {foreign[0]}); "
                                  "choose a new or empty folder, it is replaced as a whole")
    holder = OutputLock(dest).holder() if lock else None
    if holder is not None:
        raise ConfigError(OutputLock.busy_message(dest, holder))
    return dest


# -- the lock ------------------------------------------------------------------------------
class OutputBusy(ConfigError):
    """Another live run writes the same output."""


class OutputLock:
    """``DEST.lock`` beside ``DEST``: one run at a time writes ``DEST``.

    The file holds the pid, host and start time of its run; the run holds an ``flock``
    on it, which the kernel drops when the process ends however it ends. A lock file
    nobody holds (a run killed with -9) is stale and is taken over; so is one whose
    pid is gone from this host.
    """

    def __init__(self, dest: str | Path) -> None:
        self.dest = Path(dest)
        self.path = self.dest.with_name(self.dest.name + ".lock")
        self._fd: int | None = None
        self.took_over: dict | None = None  # the stale holder this lock replaced

    # -- reading ---------------------------------------------------------------
    def _read(self) -> dict | None:
        try:
            text = self.path.read_text()
        except OSError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _live(self, data: dict) -> bool:
        """Whether the run named in ``data`` still runs (unknown hosts: assume it does)."""
        pid, host = data.get("pid"), data.get("host")
        if not isinstance(pid, int) or host != socket.gethostname():
            return True
        if not pid_alive(pid):
            return False
        started = data.get("started")
        return started is None or _start_ticks(pid) in (None, started)

    def holder(self) -> dict | None:
        """The live run holding the lock, or None (no lock, or a stale one)."""
        if not self.path.exists() or self._fd is not None:
            return None
        try:
            import fcntl
        except ImportError:  # no flock: by the pid alone
            data = self._read()
            return data if data and self._live(data) else None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            data = self._read() or {}
            return data if self._live(data) else None
        except OSError:
            return None
        finally:
            os.close(fd)  # closing drops the probe's shared lock
        return None

    @staticmethod
    def busy_message(dest: Path, data: dict) -> str:
        who = f"pid {data.get('pid', '?')} on {data.get('host', '?')}"
        since = f" since {data['since']}" if data.get("since") else ""
        return (f"{dest}: in use by another cqsignal run ({who}{since}); wait for it to finish "
                "or choose another output")

    # -- taking and giving back ---------------------------------------------------------
    def acquire(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:
            fcntl = None
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    data = self._read() or {}
                    os.close(fd)
                    if self._live(data):
                        raise OutputBusy(self.busy_message(self.dest, data)) from None
                    # held by a process whose run is gone (an inherited descriptor): break it
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)
                    self.took_over = data
                    continue
            else:
                data = self._read()
                if data and data.get("pid") != os.getpid() and self._live(data):
                    os.close(fd)
                    raise OutputBusy(self.busy_message(self.dest, data))
            try:  # the file we locked may have been removed by its releasing holder meanwhile
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = self._read()
            if previous and self.took_over is None:
                self.took_over = previous  # a lock file nobody held: left by a killed run
            started = _start_ticks(os.getpid())
            data = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now(),
                    "command": " ".join(sys.argv[:1] + sys.argv[1:])[:500]}
            if started is not None:
                data["started"] = started
            payload = (json.dumps(data) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise OutputBusy(f"{self.dest}: could not take its lock {self.path}")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still holding the flock, so nobody else has it
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# -- manifests ----------------------------------------------------------------------------
def _walk(folder: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            out.append(Path(root) / f)
    return out


def build_manifest(folder: Path, inputs: Mapping[str, str] | None = None, options: Any = None,
                   command: str | None = None, extra: Mapping[str, Any] | None = None,
                   only: Iterable[str] | None = None) -> dict:
    """The manifest of ``folder``'s files as they are now (``only``: just these, relative names)."""
    files = {}
    listed = _walk(folder) if only is None else [folder / rel for rel in only if (folder / rel).is_file()]
    for f in listed:
        rel = f.relative_to(folder).as_posix()
        if rel == MANIFEST:
            continue
        files[rel] = {"sha256": sha256_file(f), "bytes": f.stat().st_size}
    data = {"format": MANIFEST_FORMAT, "command": command, "files": files, "inputs": dict(inputs or {}),
            "options": options, "code_version": code_version(), "completed_at": _now()}
    if extra:
        data.update(extra)
    return data


def read_manifest(folder: str | Path) -> dict | None:
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def verify_manifest(folder: str | Path) -> list[str]:
    """What is wrong with ``folder`` against its manifest (empty: every file is as listed, none else)."""
    folder = Path(folder)
    data = read_manifest(folder)
    if data is None:
        return [f"{folder}: no readable {MANIFEST}"]
    problems = []
    listed = data["files"]
    present = {f.relative_to(folder).as_posix() for f in _walk(folder)} - {MANIFEST}
    for rel in sorted(present - set(listed)):
        problems.append(f"{rel}: not in the manifest")
    for rel, entry in sorted(listed.items()):
        f = folder / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(f) != entry.get("sha256"):
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems


# -- staged folders -------------------------------------------------------------------------
def _renameat2_exchange() -> Callable[[str, str], bool] | None:
    """Linux's atomic swap of two paths, or None where the C library lacks it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2

    def exchange(a: str, b: str) -> bool:
        if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return True
        err = ctypes.get_errno()
        if err in (22, 38, 95, 18, 1):  # EINVAL, ENOSYS, EOPNOTSUPP, EXDEV, EPERM: not here
            return False
        raise OSError(err, os.strerror(err), a)

    return exchange


_EXCHANGE = _renameat2_exchange()


def swap_into_place(staging: Path, dest: Path) -> None:
    """Make the complete folder ``staging`` be ``dest`` in one step; the old ``dest`` is removed.

    With ``renameat2(RENAME_EXCHANGE)`` the swap is atomic. Otherwise ``dest`` is
    renamed aside first: between the two renames it is absent (the next run puts back
    the new folder, which is complete, or the old one).
    """
    if os.path.lexists(dest):
        if _EXCHANGE is not None and _EXCHANGE(str(staging), str(dest)):
            old = staging  # after the swap the staging name holds the previous folder
        else:
            old = dest.with_name(f"{dest.name}.old-{_token()}")
            os.rename(dest, old)
            os.rename(staging, dest)
        _fsync_dir(dest.parent)
        if old.is_symlink():  # --out was a link to a folder: the link is replaced, its target kept
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, dest)
        _fsync_dir(dest.parent)


def _leftovers(dest: Path) -> list[Path]:
    """Staging and aside folders of ``dest`` from other runs."""
    parent = dest.parent
    if not parent.is_dir():
        return []
    out = []
    for prefix in (f"{dest.name}.tmp-", f"{dest.name}.old-"):
        for p in parent.glob(_glob_escape(prefix) + "*"):
            pid = _pid_of(p.name, prefix[len(dest.name):])
            if pid is not None and pid != os.getpid():
                out.append(p)
    return sorted(out)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def recover(dest: str | Path, salvage: Callable[[Path], None] | None = None,
            say: Callable[[str], None] | None = None) -> list[str]:
    """Finish or undo what a killed run left beside ``dest``; call with ``dest``'s lock held.

    Where ``dest`` is missing (a run killed between the two renames of a swap), the
    newest complete staging folder takes its place, else the previous folder set aside.
    ``salvage`` sees every other leftover folder before it is removed (a benchmark
    reads finished runs from its journal). Returns what was done, one line each.
    """
    dest = Path(dest)
    done: list[str] = []
    leftovers = _leftovers(dest)
    if not leftovers:
        return done
    if not os.path.lexists(dest):
        staged = [p for p in leftovers if ".tmp-" in p.name[len(dest.name):] and not verify_manifest(p)]
        staged.sort(key=lambda p: (read_manifest(p) or {}).get("completed_at") or "")
        aside = [p for p in leftovers if ".old-" in p.name[len(dest.name):]]
        chosen = staged[-1] if staged else (aside[0] if aside else None)
        if chosen is not None:
            os.rename(chosen, dest)
            leftovers.remove(chosen)
            what = "its new complete set" if chosen in staged else "the previous set"
            done.append(f"{dest}: restored {what} from {chosen.name} (a run was interrupted while "
                        "replacing it)")
    for p in leftovers:
        if salvage is not None and p.is_dir():
            try:
                salvage(p)
            except Exception:  # noqa: BLE001 - a damaged leftover has nothing to give
                pass
        if p.is_symlink():
            p.unlink()
        else:
            shutil.rmtree(p, ignore_errors=True)
        done.append(f"{dest}: removed {p.name}, left by an interrupted run")
    for line in done:
        if say is not None:
            say(line)
    return done


@dataclass
class Stage:
    """An output folder being built: write into ``path``; it becomes ``dest`` on success."""

    dest: Path
    path: Path
    command: str | None = None
    options: Any = None
    inputs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)

    def add_inputs(self, paths: Iterable[str | Path]) -> None:
        """Record input files (their sha256 goes into the manifest)."""
        self.inputs.update(file_hashes(paths))

    def final(self, path: str | Path) -> Path:
        """Where a file written under ``path`` will be once published."""
        p = Path(path)
        try:
            return self.dest / p.relative_to(self.path)
        except ValueError:
            return p

    def commit(self) -> dict:
        manifest = build_manifest(self.path, self.inputs, self.options, self.command, self.extra)
        for f in _walk(self.path):
            _fsync(f)
        atomic_write_json(self.path / MANIFEST, manifest)
        _fsync_dir(self.path)
        swap_into_place(self.path, self.dest)
        return manifest


@contextlib.contextmanager
def staged_output(dest: str | Path, *, command: str | None = None, options: Any = None,
                  inputs: Iterable[str | Path] = (), known: Iterable[str] = (),
                  salvage: Callable[[Path], None] | None = None,
                  say: Callable[[str], None] | None = None) -> Iterator[Stage]:
    """Build the output folder ``dest`` in a staging folder and publish it whole at the end.

    Refuses (one line) a ``dest`` :func:`check_out` refuses, takes ``dest``'s lock for
    the whole block, recovers what a killed run left, and yields a :class:`Stage`. On
    success the manifest is written and the folder replaces ``dest``; on an exception
    the staging folder is removed and ``dest`` is as it was.
    """
    dest = Path(dest)
    check_out(dest, known, command=command)
    dest.absolute().parent.mkdir(parents=True, exist_ok=True)
    with OutputLock(dest) as lock:
        if lock.took_over and say is not None:
            say(f"{dest}: took over the lock of an interrupted run (pid {lock.took_over.get('pid', '?')})")
        recovered = recover(dest, salvage=salvage, say=say)
        check_out(dest, known, lock=False, command=command)  # a recovered folder is checked like any other
        staging = dest.with_name(f"{dest.name}.tmp-{_token()}")
        os.mkdir(staging)
        stage = Stage(dest=dest, path=staging, command=command, options=options, recovered=recovered)
        stage.add_inputs(inputs)
        try:
            yield stage
            stage.commit()
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


# -- sets of files in a shared folder -------------------------------------------------------------
def _set_prefix(seal: Path) -> str:
    return f".{seal.name}.set-"


def publish_file_set(payload: Mapping[Path, Callable[[Path], None]], seal: Path,
                     write_seal: Callable[[Path, dict[str, str]], None]) -> None:
    """Write files that belong together in ``seal``'s folder and put them in place as a set.

    ``payload`` maps each target to a function that writes it (given a path); ``seal``
    is the file whose presence makes the set valid (a model's meta file): ``write_seal``
    writes it last, given ``{name: sha256}`` of the payload files so it can record them.
    """
    seal = Path(seal)
    folder = seal.parent
    folder.mkdir(parents=True, exist_ok=True)
    recover_file_set(seal)
    staging = folder / f"{_set_prefix(seal)}tmp-{_token()}"
    os.mkdir(staging)
    try:
        hashes = {}
        for target, write in payload.items():
            path = staging / Path(target).name
            write(path)
            hashes[path.name] = sha256_file(path)
        write_seal(staging / seal.name, hashes)
        for f in _walk(staging):
            os.chmod(f, FILE_MODE)
            _fsync(f)
        _fsync_dir(staging)
        committed = folder / f"{_set_prefix(seal)}commit-{_token()}"
        os.rename(staging, committed)  # the decision: from here on the new set is the one
        _fsync_dir(folder)
        _apply_set(committed, seal)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _apply_set(committed: Path, seal: Path) -> None:
    """Move a committed set into place, seal last; safe to repeat after a kill."""
    folder = seal.parent
    new_seal = committed / seal.name
    if new_seal.exists():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(seal)  # the old set is no longer valid from here
    for f in sorted(committed.iterdir()):
        if f.name != seal.name:
            os.replace(f, folder / f.name)
    if new_seal.exists():
        os.replace(new_seal, seal)
    _fsync_dir(folder)
    shutil.rmtree(committed, ignore_errors=True)


def recover_file_set(seal: str | Path) -> bool:
    """Complete a set committed by a writer that was killed, and drop its unfinished ones.

    Returns True if a committed set was completed.
    """
    seal = Path(seal)
    folder = seal.parent
    prefix = _set_prefix(seal)
    if not folder.is_dir():
        return False
    done = False
    for p in sorted(folder.glob(_glob_escape(prefix) + "*")):
        rest = p.name[len(prefix):]
        pid = _pid_of(rest, "tmp-" if rest.startswith("tmp-") else "commit-")
        if pid is None or (pid != os.getpid() and pid_alive(pid)):
            continue  # a live writer's
        if rest.startswith("commit-"):
            _apply_set(p, seal)
            done = True
        else:
            shutil.rmtree(p, ignore_errors=True)
    return done


__all__ = ["FILE_MODE", "MANIFEST", "OutputBusy", "OutputLock", "Stage", "atomic_path", "atomic_write_bytes",
           "atomic_write_json", "atomic_write_text", "build_manifest", "check_out", "code_version",
           "content_key", "file_digest", "file_hashes", "model_files", "publish_file_set", "read_manifest",
           "recover", "recover_file_set", "scenario_files", "sha256_file", "staged_output", "swap_into_place",
           "verify_manifest"]
