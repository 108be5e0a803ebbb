"""The one output policy of every command that writes files (separate, stream, export,
evaluate, oracle, cadenza, data.synthetic, train):

* **never replace a file the command did not write itself**: a folder's manifest,
  ``.xslicq-<command>.json`` (:class:`OutputFolder`), lists the files that command wrote
  there with their SHA-256; a file that is not listed, or that changed since, is never
  written over or removed, ``--force`` or not;
* **never write through a symlink or onto an input**: an output that is a symbolic link, or
  the same file as one of the command's inputs (:func:`os.path.samefile`, after resolving
  links), is refused (:func:`check_target`);
* **an existing output needs** ``--force`` (``force=true`` for the Hydra commands);
* **one run at a time per folder**: a run claims its output folder (:func:`claim`) with an
  exclusive lock on ``.xslicq.lock`` there, which records its process id; a second run at
  the same instant is refused with that id. The lock goes with the process, so a claim left
  by a killed run never blocks the next;
* **every file is written whole or not at all**: to a temporary file in the same folder,
  then renamed into place (:func:`write_atomic`);
* **a full disk is one line that says so** (:func:`write_failure`), and the manifest still
  lists exactly the files that are there, so the next run is not refused for them.

Only the standard library: the inference-only install (no torch) uses it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

from .cli import fail, temporary_file
from .errors import OutputError, OutputRefused

CLAIM = ".xslicq.lock"  # the lock file a run holds in the folder it writes
LOW_SPACE = 16 << 20  # bytes free below which a failed write is reported as a full disk
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)


def sha256(path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------- failures
def disk_full(folder) -> bool:
    """Whether the disk that holds ``folder`` (or its nearest existing parent) has less than
    :data:`LOW_SPACE` bytes free: libsndfile and torch's zip writer report a full disk as
    ``System error.`` or ``unexpected pos``, without the system's error number."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE
    except OSError:
        return False


def write_failure(err: BaseException, path) -> OutputError:
    """The :class:`OutputError` for ``err`` raised while writing ``path``: a full disk (or
    quota, or file size limit) says so and how much room is left; a folder the process may
    not write in says so; anything else keeps the system's reason."""
    path = Path(path)
    number = getattr(err, "errno", None)
    if number in _DISK_FULL or (number is None and disk_full(path.parent)):
        try:
            free = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
            room = f" ({free / 2**20:.1f} MiB free)"
        except OSError:
            room = ""
        return OutputError(
            f"cannot write {path}: no space left on the disk{room}; free some disk space "
            "or choose an output folder on another disk"
        )
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputRefused(
            f"cannot write {path}: permission denied (the folder {path.parent} is read-only "
            "or not yours); choose another output folder"
        )
    reason = getattr(err, "strerror", None) or " ".join(str(err).split()) or type(err).__name__
    return OutputError(f"cannot write {path}: {reason}")


def check_writable(folder, what: str = "output folder") -> None:
    """An :class:`OutputError` unless ``folder`` is, or can be made as, a folder this process
    can write in (checked by creating and removing a file in it or in its nearest existing
    parent)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file, so it cannot be made)"
        raise OutputRefused(f"{what} {folder}{where or ' is a file, not a folder'}")
    try:
        handle, probe = temporary_file(existing, ".xslicq-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise OutputRefused(
            f"{what} {folder} cannot be written: no new file can be made in {existing} "
            f"({err.strerror or err})"
        ) from None


def check_target(path, inputs=(), what: str = "output", link: bool = False) -> Path:
    """``path`` if a command may write it: an :class:`OutputError` when it is a symbolic
    link (writing would change the link's target, wherever it is; ``link``: a folder
    reached through a link is allowed) or the same file as one of ``inputs`` (compared with
    :func:`os.path.samefile`, and by resolved path for files not made yet), ``--force`` or
    not."""
    path = Path(path)
    if path.is_symlink() and not link:
        raise OutputRefused(
            f"{what} {path} is a symbolic link (to {os.readlink(path)}); it is not written "
            "through: remove the link or choose another output"
        )
    for source in inputs:
        if source is None or str(source) == "-":
            continue
        source = Path(source)
        same = os.path.realpath(path) == os.path.realpath(source)
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(path, source)
        if same:
            raise OutputRefused(
                f"{what} {path} is the input {source}; it is never written over: choose "
                "another output"
            )
    return path


# ---------------------------------------------------------------------- claiming a folder
def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text().split()[0]
    except (OSError, IndexError):
        return "another run"
    return f"another run (process {pid})"


_HELD: dict = {}  # folders this process holds: (real path, thread) -> depth of claims


@contextlib.contextmanager
def claim(folder, what: str = "output folder"):
    """Hold ``folder`` for this run: made (with its parents) if missing, locked with an
    exclusive :func:`fcntl.flock` on ``folder/.xslicq.lock``, which records this process's
    id. A folder another live run holds is an :class:`OutputError` naming that process at
    once (no waiting). The kernel drops the lock when its process ends, however it ends,
    so a lock file left by a killed run does not block. On leaving, the lock file is
    removed, and so is the folder if this call made it and nothing was written there.
    A folder this process already holds (a Hydra command's job folder, claimed by
    :class:`HydraOutputCheck`) is held again at no cost."""
    import threading

    folder = Path(folder)
    key = (os.path.realpath(folder), threading.get_ident())
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    with _claim(folder, what):
        _HELD[key] = 1
        try:
            yield folder
        finally:
            _HELD.pop(key, None)


@contextlib.contextmanager
def _claim(folder: Path, what: str):
    import fcntl

    check_writable(folder, what)
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_failure(err, folder) from None
    lock = folder / CLAIM
    while True:
        try:
            handle = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise write_failure(err, lock) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise OutputRefused(
                f"{what} {folder} is being written by {_holder(lock)}; wait for it to end or "
                "choose another folder"
            ) from None
        # the holder before us may have removed the file it locked: lock the one in place
        try:
            if os.fstat(handle).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(handle)
    try:
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(handle)
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty


# ---------------------------------------------------------------------- writing files
def write_atomic(path, data: bytes | str | None = None, write=None) -> Path:
    """Write ``path`` whole or not at all: ``data`` (bytes or text), or what ``write(tmp)``
    writes to the temporary path it is given, goes to a temporary file in the same folder
    (the mode of any new file), which is then renamed over ``path``. A failure removes the
    temporary file and is an :class:`OutputError` (:func:`write_failure`)."""
    path = Path(path)
    try:
        handle, tmp = temporary_file(path.parent, f".{path.name}.", ".partial")
    except OSError as err:
        raise write_failure(err, path) from None
    try:
        if write is None:
            with os.fdopen(handle, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
        else:
            os.close(handle)
            write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # RuntimeError: libsndfile's, torch's writers
        raise write_failure(err, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OutputFolder:
    """A folder one command writes files into, with its manifest ``.xslicq-<command>.json``
    (``{"version": 1, ...source, "files": {name: sha256 or null}}``: null for a file listed
    before it is written).

    Args:
        folder: the folder (made when the first file is written).
        command: names the manifest (``separate`` -> ``.xslicq-separate.json``).
        inputs: the command's input files, never written over.
        force_hint: how the command's messages name its force switch (``--force``,
            ``force=true``).
        ignore: names in the folder that are neither the command's outputs nor in its way
            (Hydra's ``.hydra`` and log file).
    """

    def __init__(self, folder, command: str, inputs=(), force_hint="--force", ignore=()):
        self.folder, self.command = Path(folder), command
        self.manifest = self.folder / f".xslicq-{command}.json"
        self.inputs, self.force_hint = tuple(inputs), force_hint
        self.ignore = {CLAIM, self.manifest.name, *ignore}
        self.files: dict = {}
        self.source: dict = {}

    # -- reading
    def read_manifest(self) -> dict:
        """The manifest in the folder (``{}`` when there is none)."""
        if not self.manifest.exists():
            return {}
        try:
            manifest = json.loads(self.manifest.read_text())
            if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
                raise ValueError("no list of files")
        except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
            raise OutputRefused(
                f"cannot read {self.manifest} ({err}): it is damaged or not {self.command}'s; "
                "move it away or choose another output folder"
            ) from None
        return manifest

    def own_files(self, manifest: dict | None = None) -> set[str]:
        """The files of the folder that the manifest lists and that are unchanged since
        (plain files, not links; a file listed without a digest was being written)."""
        manifest = self.read_manifest() if manifest is None else manifest
        ours = set()
        for name, digest in manifest.get("files", {}).items():
            parts = Path(name).parts if isinstance(name, str) else ()
            if not parts or Path(name).is_absolute() or any(p in (".", "..") for p in parts):
                continue  # only paths inside this folder are the command's
            path = self.folder / name
            if any((self.folder / Path(*parts[:k])).is_symlink() for k in range(1, len(parts))):
                continue  # not through a link
            if path.is_file() and not path.is_symlink() and digest in (None, sha256(path)):
                ours.add(Path(*parts).as_posix())
        return ours

    def _own_entries(self, ours: set[str]) -> set[str]:
        """The top-level names of the folder that are the command's: its files, and its
        folders (not links) that hold only its files."""
        entries = {n for n in ours if "/" not in n}
        for sub in {n.split("/")[0] for n in ours if "/" in n}:
            folder = self.folder / sub
            if folder.is_symlink() or not folder.is_dir():
                continue
            inside = [p for p in folder.rglob("*") if not p.is_dir() or p.is_symlink()]
            if all(p.relative_to(self.folder).as_posix() in ours for p in inside):
                entries.add(sub)
        return entries

    # -- planning
    def plan(self, names, force: bool, what: str = "files") -> list[str]:
        """Check that ``names`` (file names) may be written in the folder; return the
        command's own earlier files there that this run does not write again (to remove).

        Each name is checked by :func:`check_target` (no link, no input). Another file in the
        way is an :class:`OutputError` naming it, force or not; a folder that holds anything
        but this command's manifest, lock and ignored names needs ``force``."""
        for name in names:
            check_target(self.folder / name, self.inputs)
        present = sorted(p.name for p in self.folder.iterdir()) if self.folder.is_dir() else []
        present = [n for n in present if n not in self.ignore]
        if not present:
            return []
        manifest = self.read_manifest()
        ours = self._own_entries(self.own_files(manifest))
        foreign = [n for n in present if n not in ours]
        clash = [n for n in names if n in foreign]
        if clash:
            raise OutputRefused(
                f"output folder {self.folder} holds files that {self.command} did not write (or "
                f"that changed since), which it would overwrite: {', '.join(clash)}; choose "
                f"another output folder ({self.force_hint} replaces only {self.command}'s own "
                "earlier files)"
            )
        if not force:
            if ours:
                earlier = manifest.get("input")
                of = f" of {Path(str(earlier)).name}" if earlier else ""
                raise OutputRefused(
                    f"output folder {self.folder} exists and is not empty; use "
                    f"{self.force_hint} to replace the {what}{of} that {self.command} wrote there"
                )
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise OutputRefused(
                f"output folder {self.folder} exists and is not empty (it holds {shown}); use "
                f"{self.force_hint} to write the {what} beside these files, or choose an empty "
                "folder"
            )
        return sorted(ours - set(names))

    def plan_files(self, names, force: bool) -> None:
        """Check that the files ``names`` may be written in a folder that holds other things
        too (an export beside its checkpoint): each by :func:`check_target`; one that exists
        is replaced only with ``force`` and only when this command wrote it (its manifest
        says so and it is unchanged), else an :class:`OutputError` names it."""
        ours = None
        for name in names:
            path = check_target(self.folder / name, self.inputs)
            if not path.exists():
                continue
            if ours is None:
                ours = self.own_files()
            if name not in ours:
                raise OutputRefused(
                    f"{path} exists and {self.command} did not write it (or it changed since); "
                    f"it is never replaced, {self.force_hint} or not: choose another output "
                    "file or move it away"
                )
            if not force:
                raise OutputRefused(
                    f"{path} exists (an earlier {self.command} wrote it); use {self.force_hint} "
                    "to replace it, or choose another output file"
                )

    # -- writing
    def begin(self, names, stale=(), source: dict | None = None) -> None:
        """Record ``names`` (about to be written, no digest yet) and ``stale`` (to be
        removed) in the manifest before any of them is touched, so a run that stops midway
        leaves no file that a later force would refuse to replace."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_failure(err, self.folder) from None
        before = self.read_manifest().get("files", {})
        kept = self.own_files()
        self.source = dict(source or {})
        self.files = {n: before[n] for n in kept if n not in names}
        self.files.update({n: before.get(n) for n in stale})
        self.files.update({n: None for n in names})
        self.save()

    def save(self) -> None:
        """Write the manifest (atomically)."""
        record = {"version": 1, **self.source, "files": self.files}
        write_atomic(self.manifest, json.dumps(record, indent=1))

    def record(self, name: str) -> None:
        """Note that ``name`` is now written (its digest), without saving the manifest."""
        self.files[name] = sha256(self.folder / name)

    def write(self, name: str, data=None, write=None) -> Path:
        """Write file ``name`` atomically (:func:`write_atomic`) and record its digest."""
        path = check_target(self.folder / name, self.inputs)
        write_atomic(path, data, write)
        self.record(name)
        return path

    def finish(self, stale=()) -> None:
        """Remove ``stale`` (this command's own earlier files) and save the manifest."""
        for name in stale:
            (self.folder / name).unlink(missing_ok=True)
            self.files.pop(name, None)
        self.save()

    def remove_own(self, names) -> None:
        """Remove the command's own earlier files among ``names`` (top-level names: a file,
        or every file of that folder the manifest lists, and the folders left empty)."""
        ours = self.own_files()
        for name in names:
            for rel in sorted(ours):
                if rel == name or rel.startswith(f"{name}/"):
                    (self.folder / rel).unlink(missing_ok=True)
                    self.files.pop(rel, None)
            folder = self.folder / name
            if folder.is_dir() and not folder.is_symlink():
                for sub in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)):
                    if sub.is_dir() and not sub.is_symlink():
                        with contextlib.suppress(OSError):
                            sub.rmdir()
                with contextlib.suppress(OSError):
                    folder.rmdir()

    def contents(self) -> set[str]:
        """Every file under the folder (relative paths), less the lock, the manifest and the
        ignored names."""
        if not self.folder.is_dir():
            return set()
        found = set()
        for path in self.folder.rglob("*"):
            rel = path.relative_to(self.folder)
            if rel.parts[0] in self.ignore or (path.is_dir() and not path.is_symlink()):
                continue
            found.add(rel.as_posix())
        return found

    def settle(self) -> None:
        """After a failure: keep in the manifest only the files that are there (and the
        command's), so the next run sees the folder as it is (a manifest that lists
        nothing is no file in the way)."""
        with contextlib.suppress(OSError, ValueError):
            ours = self.own_files({"files": self.files})
            self.files = {n: d for n, d in self.files.items() if n in ours}
            self.save()


# ---------------------------------------------------------------------- a command's results
HYDRA_FILES = (".hydra",)  # what Hydra writes in a job's folder before the command runs


@contextlib.contextmanager
def results(folder, command: str, names, force: bool, inputs=(), source=None):
    """Write a Hydra command's results into ``folder`` under the policy: claimed
    (:func:`claim`), planned (:meth:`OutputFolder.plan`: ``names`` are the top-level files
    and folders it writes; Hydra's ``.hydra`` and ``<command>.log`` are left aside), its own
    earlier results there removed first with ``force=true`` (so a folder never mixes two
    runs' files), then every file the body writes recorded in the manifest
    ``.xslicq-<command>.json`` with its digest, also when the body fails. A full disk or a
    folder that cannot be written is an :class:`OutputError` that says so. Yields the
    :class:`OutputFolder`."""
    folder = Path(folder)
    ignore = (*HYDRA_FILES, f"{command}.log")
    out = OutputFolder(folder, command, inputs, force_hint="force=true", ignore=ignore)
    check_target(folder, inputs, "output folder", link=True)
    with claim(folder):
        stale = out.plan(list(names), force, what="results")
        out.begin([], source=source)
        out.remove_own([*names, *stale])
        out.save()
        before = out.contents()
        try:
            yield out
        except OSError as err:
            raise write_failure(err, err.filename or folder) from None
        finally:
            with contextlib.suppress(OSError):
                for rel in sorted(out.contents() - before):
                    path = folder / rel
                    if path.is_file() and not path.is_symlink():
                        out.files[rel] = sha256(path)
                out.save()


class HydraOutputCheck:
    """A Hydra callback (``hydra.callbacks`` of a command's config) that runs before Hydra
    makes the job's folder and writes its record (``.hydra``) there: the folder must be
    writable, else one ``error:`` line and exit ``status`` instead of Hydra's traceback.

    Args:
        status: the exit status of a refusal; ``None``: the convention's
            (:func:`xslicq.cli.exit_status`, 2).
        claim: also claim the folder (:func:`claim`) for the whole run, so that a second
            run at the same instant is refused before Hydra writes its record over the first
            one's.
        command: a folder that holds this command's own files (its manifest says so) is
            refused unless the config's ``unless`` key is true (``force``).
        taken: a subfolder whose files mean the folder is another run's (``checkpoints``
            of a training run), refused unless the config's ``unless`` key is set
            (``resume``).
        unless: that key.
        inputs: keys of the config that name the command's inputs (``checkpoint``,
            ``data.root``): the folder is none of them.
    """

    def __init__(self, status=None, claim=False, command=None, taken=None, unless=None, inputs=()):
        self.status = None if status is None else int(status)
        self.claim, self.command = bool(claim), command
        self.taken, self.unless, self.inputs = taken, unless, list(inputs or ())
        self._held = contextlib.ExitStack()

    def _refuse(self, err: OutputError) -> None:
        self._held.close()
        status = fail(err)
        raise SystemExit(status if self.status is None else self.status)

    def _check(self, config, key: str, run: bool) -> None:
        from omegaconf import OmegaConf

        try:
            folder = OmegaConf.select(config, key)
            allowed = bool(OmegaConf.select(config, self.unless)) if self.unless else False
            inputs = [OmegaConf.select(config, k) for k in self.inputs]
        except Exception:  # noqa: BLE001 - an interpolation Hydra reports itself
            return
        if folder in (None, ""):
            return
        folder = Path(str(folder))
        try:
            inputs = [str(i) for i in inputs if i not in (None, "")]
            check_target(folder, inputs, "output folder", link=True)
            check_writable(folder)
            # a process Lightning started for another rank (LOCAL_RANK > 0) runs in the
            # folder its rank 0 holds
            if not run or os.environ.get("LOCAL_RANK", "0") != "0":
                return
            if self.claim:
                import atexit

                self._held.enter_context(claim(folder))
                atexit.register(self._held.close)  # a command that ends in SystemExit
            if allowed:
                return
            if self.command and OutputFolder(folder, self.command).own_files():
                raise OutputRefused(
                    f"output folder {folder} holds the results of an earlier {self.command}; "
                    f"use force=true to replace them, or choose another out="
                )
            taken = folder / str(self.taken) if self.taken else None
            if taken is not None and taken.is_dir() and any(taken.iterdir()):
                raise OutputRefused(
                    f"run folder {folder} holds another run's {self.taken} ({taken}); continue "
                    f"that run with {self.unless}={folder}, or start a new run in a new folder"
                )
        except OutputError as err:
            self._refuse(err)

    def on_run_start(self, config, **kwargs) -> None:
        self._check(config, "hydra.run.dir", True)

    def on_multirun_start(self, config, **kwargs) -> None:
        self._check(config, "hydra.sweep.dir", False)

    def on_run_end(self, config, **kwargs) -> None:
        self._held.close()

    def on_multirun_end(self, config, **kwargs) -> None:
        pass

    def on_job_start(self, config, **kwargs) -> None:
        pass

    def on_job_end(self, config, job_return, **kwargs) -> None:
        pass

    def on_compose_config(self, config, **kwargs) -> None:
        pass
