"""`cmr bench crash`'s disk phase: the running search service (`cmr serve search` as deployed: TLS, tokens,
audit on) with its whole data folder (index, generation table, backups, audit log) on a small tmpfs this
harness mounts, then filled to the last byte by a ballast file.

Checked while the disk is full: Upserts and Deletes answer RESOURCE_EXHAUSTED (or UNAVAILABLE) with a message
naming the folder, searches and Gets keep answering, a backup fails cleanly (no finished-looking folder, no
`.partial` copy left holding the space), a generation switch fails and leaves the table as it was, the periodic
index log sync runs on the full disk, and the process stays alive throughout. Then the ballast goes: writes,
backups and switches work again. Finally the service is stopped, the store opened offline and compared with
every acknowledged write, the audit chain verified (an entry for every acknowledged write), and the service
started once more on the same folder.

Needs mount(2) (root or CAP_SYS_ADMIN): `SmallDisk` raises MountRefused otherwise, and the caller skips.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench.crash_checks import check_audit, check_store, random_unit
from bench.crash_clients import SECRET, exam_upsert
from bench.crash_ledger import DELETED, Expected, Ledger
from bench.crash_search import SearchCrashRun

FS_MB = 832          # the small filesystem: the index (two generations, ~180 MB on tmpfs) and one backup (~3x)
MIN_FREE_MB = 48     # CMR_INDEX_MIN_FREE_MB for the phase: above one WAL segment, as the default 256 MB is
FLUSH_S = 1.0        # CMR_INDEX_FLUSH_INTERVAL_S: the periodic log sync must run while the disk is full
FULL_HOLD_S = 2.5    # the disk stays full at least this long (two syncs)
REFUSED_CODES = {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}


class MountRefused(RuntimeError):
    """This process may not mount a filesystem (not root, or in a container without CAP_SYS_ADMIN)."""


class SmallDisk:
    """A tmpfs of `size_mb` mounted at `path` for the duration of a `with` block (lazily unmounted after)."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path, self.size_mb = path, size_mb

    def __enter__(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs",
                               str(self.path)], capture_output=True, text=True)
        if done.returncode:
            raise MountRefused(f"cannot mount a {self.size_mb} MB tmpfs at {self.path}: "
                               f"{(done.stderr or done.stdout).strip()} (needs root / CAP_SYS_ADMIN)")
        return self

    def __exit__(self, *exc: object) -> None:
        done = subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"could not unmount {self.path}: {done.stderr.strip()}")

    def free_mb(self) -> float:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize / 2**20


def fill(path: Path) -> int:
    """Write a ballast file at `path` until the filesystem refuses another byte; its size."""
    written = 0
    with open(path, "wb", buffering=0) as fh:
        for chunk in (4 * 2**20, 64 * 2**10, 4096, 1):
            block = b"\0" * chunk
            while True:
                try:
                    n = fh.write(block)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    break
                written += n or 0
                if not n or n < chunk:
                    break
    return written


@dataclass
class DiskFullResult:
    fs_mb: int
    min_free_mb: float
    acked_before: int = 0            # writes acknowledged before the disk filled
    ballast_mb: float = 0.0
    refused: int = 0                 # writes answered RESOURCE_EXHAUSTED / UNAVAILABLE on the full disk
    refused_codes: list[str] = field(default_factory=list)
    refusals_naming_disk: int = 0    # of those, how many named the data folder
    refusal_example: str = ""
    wrongly_accepted: int = 0        # writes answered OK while the disk was full (the guard missed them)
    searches_full: int = 0           # searches and Gets answered while full
    search_errors_full: int = 0
    full_s: float = 0.0              # how long the disk stayed full (the index log sync runs every FLUSH_S)
    flush_failures: int = 0          # index log syncs that failed (logged, retried at the next tick)
    backup_full: str = ""            # the full disk's answer to a backup
    backup_leftovers: list[str] = field(default_factory=list)
    switch_full: str = ""            # ... and to a generation switch
    table_ok_full: bool = False      # the generation table unchanged and valid after that switch
    alive_throughout: bool = False
    acked_after: int = 0             # writes acknowledged once space returned
    backup_after_ok: bool = False    # a backup after the ballast went verifies
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    stored: int = 0
    table_ok: bool = False
    backups_ok: bool = False         # every acknowledged backup verifies at the end
    audit_ok: bool = False
    audit_missing: int = 0           # acknowledged writes without an audit entry
    audit_entries_lost_full: int = 0  # RPCs answered while full whose audit entry could not be written
    audit_reserve_released: int = 0  # times the audit log gave its space reserve back to write on
    audit_refusals_recorded: int = 0  # audit entries of the writes refused on the full disk (RESOURCE_EXHAUSTED)
    restarted: bool = False
    restart_s: float = 0.0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class DiskFullRun:
    """`run()` the phase once in `work` (the tmpfs is mounted at work/data)."""

    def __init__(self, work: Path, seed: int = 20, fs_mb: int = FS_MB, min_free_mb: float = MIN_FREE_MB) -> None:
        self.work, self.fs_mb, self.min_free_mb = work, fs_mb, min_free_mb
        self.rng = random.Random(seed)
        self.vectors = np.random.default_rng(seed)
        self.next_uid = 0
        self.result = DiskFullResult(fs_mb, min_free_mb)

    def run(self, progress: Callable[[str], None] | None = None) -> DiskFullResult:
        from search_svc.client import SearchClient

        say = progress or (lambda _m: None)
        t0 = time.perf_counter()
        r = self.result
        with SmallDisk(self.work / "data", self.fs_mb) as disk:
            crash = SearchCrashRun(self.work, extra_env={"CMR_INDEX_MIN_FREE_MB": str(self.min_free_mb),
                                                         "CMR_INDEX_FLUSH_INTERVAL_S": str(FLUSH_S)})
            self.crash, self.disk, self.ledger = crash, disk, Ledger()
            crash.first_start(backup=False)  # space: a backup takes ~3x the index on tmpfs
            say(f"service up on a {self.fs_mb} MB tmpfs ({disk.free_mb():.0f} MB free)")
            search, admin = crash.clients()
            reader = SearchClient(crash.url, settings=crash.admin_settings)  # a search needs a clinician or admin
            try:
                self._phase_before(search)
                say(f"{r.acked_before} writes acknowledged; filling the disk")
                ballast = crash.data / "ballast.bin"
                r.ballast_mb = round(fill(ballast) / 2**20, 1)
                self._phase_full(search, admin, reader)
                say(f"full disk: {r.refused} writes refused, {r.searches_full} reads answered, backup "
                    f"{r.backup_full}, switch {r.switch_full}, alive {r.alive_throughout}")
                ballast.unlink()
                self._phase_after(search, admin)
                say(f"space back: {r.acked_after} writes acknowledged, backup ok {r.backup_after_ok}")
            finally:
                for client in (search, admin, reader):
                    client.close()
            self._stop_and_check()
            self._restart()
            say(f"after the restart: lost {r.lost}, duplicated {r.duplicated}, audit ok {r.audit_ok}, "
                f"problems {r.problems}")
        r.seconds = round(time.perf_counter() - t0, 1)
        return r

    # --- writes ----------------------------------------------------------------------------------------------
    def _new_exams(self, n: int) -> tuple[list[Any], dict[str, Expected]]:
        from cmr.rpc.keys import study_key

        msgs, changes = [], {}
        for _ in range(n):
            self.next_uid += 1
            uid = f"1.2.826.0.1.3680043.10.2.{self.next_uid}"
            key = study_key(uid, SECRET)
            msg, state = exam_upsert(uid, key, self.rng, self.vectors, self.crash.model_version, self.crash.dim)
            msgs.append(msg)
            changes[key] = state
        return msgs, changes

    def _write(self, search: Any, deleting: bool = False) -> grpc.RpcError | None:
        """One Upsert of 1-8 new studies (or a Delete of 1-3 stored ones); None when acknowledged, else the
        error. A refused write is taken at its word (nothing written): the final check would catch one that
        landed anyway."""
        present = self.ledger.present()
        if deleting and present:
            keys = self.rng.sample(present, min(len(present), self.rng.randint(1, 3)))
            changes: dict[str, Expected] = {k: DELETED for k in keys}
            call: Callable[[], Any] = lambda: search.delete(keys)  # noqa: E731
        else:
            msgs, changes = self._new_exams(self.rng.randint(1, 8))
            call = lambda: search.upsert(msgs)  # noqa: E731
        self.ledger.sending(changes)
        try:
            call()
        except grpc.RpcError as exc:
            self.ledger.refused(changes)
            return exc
        self.ledger.ack(changes)
        return None

    def _acked(self) -> int:
        return self.ledger.acked_upserts + self.ledger.acked_deletes

    # --- phases ----------------------------------------------------------------------------------------------
    def _phase_before(self, search: Any) -> None:
        for i in range(40):
            exc = self._write(search, deleting=i % 5 == 4)
            if exc is not None:
                self.result.problems.append(f"a write before the disk filled failed: {exc.code().name}: "
                                            f"{exc.details()}")
                return
        self.result.acked_before = self._acked()

    def _phase_full(self, search: Any, admin: Any, reader: Any) -> None:
        r, crash = self.result, self.crash
        folder = str(crash.data)
        started = time.monotonic()
        table_before = (crash.index_dir / "generations.json").read_bytes()
        while time.monotonic() - started < FULL_HOLD_S or r.refused < 8:
            exc = self._write(search, deleting=r.refused % 4 == 3)
            if exc is None:
                r.wrongly_accepted += 1
            else:
                r.refused += 1
                code = exc.code().name
                if code not in r.refused_codes:
                    r.refused_codes.append(code)
                r.refusals_naming_disk += folder in (exc.details() or "")
                r.refusal_example = r.refusal_example or f"{code}: {exc.details()}"
            self._read(reader)
            if r.refused > 1000:
                break
        r.backup_full = self._admin_call(lambda: admin.backup("on-full-disk"))
        backups = crash.data / "backups"
        r.backup_leftovers = sorted(p.name for p in backups.iterdir() ) if backups.is_dir() \
            else []
        for _ in range(5):
            self._read(reader)
        # the switch last: where it succeeds (a page freed by a cut-back audit write can be enough for the
        # table) the spare generation is active, and it holds none of the studies the reads ask for
        target = next(g for g in crash.generations if g != crash.admin_ledger.active)
        r.switch_full = self._admin_call(lambda: admin.switch(target, force=True))
        if r.switch_full == "OK":
            crash.admin_ledger.active = target
        table_after = (crash.index_dir / "generations.json").read_bytes()
        stray = sorted(p.name for p in crash.index_dir.glob(".generations.json.*"))
        switched = r.switch_full == "OK" and json.loads(table_after)["active"] == target
        r.table_ok_full = (switched or table_after == table_before) and not stray
        r.alive_throughout = crash.process.alive()
        r.full_s = round(time.monotonic() - started, 1)
        if r.wrongly_accepted:
            r.problems.append(f"{r.wrongly_accepted} writes answered OK on the full disk")
        if r.refused_codes and not set(r.refused_codes) <= REFUSED_CODES:
            r.problems.append(f"full-disk writes answered {r.refused_codes}, not only {sorted(REFUSED_CODES)}")
        if r.refusals_naming_disk < r.refused:
            r.problems.append(f"{r.refused - r.refusals_naming_disk} refusals do not name {folder}: "
                              f"{r.refusal_example}")
        if r.search_errors_full:
            r.problems.append(f"{r.search_errors_full} reads failed on the full disk")
        if r.backup_full == "OK" or r.backup_leftovers:
            r.problems.append(f"backup on the full disk: {r.backup_full}, left {r.backup_leftovers}")
        if not r.table_ok_full:
            r.problems.append(f"generation table after a switch on the full disk: switch {r.switch_full}, "
                              f"changed {table_after != table_before}, stray files {stray}")
        if not r.alive_throughout:
            code = crash.process.proc.returncode if crash.process.proc else None
            r.problems.append(f"the service died on the full disk (exit {code}): {crash.process.tail(1500)}")

    def _read(self, search: Any) -> None:
        r = self.result
        try:
            present = self.ledger.present()
            if present and self.rng.random() < 0.5:
                search.get(self.rng.choice(present))
            else:
                search.similar(top_k=5, embedding=random_unit(self.vectors, self.crash.dim))
            r.searches_full += 1
        except grpc.RpcError as exc:
            r.search_errors_full += 1
            if r.search_errors_full == 1:
                r.problems.append(f"a read on the full disk failed: {exc.code().name}: {exc.details()}")

    def _admin_call(self, call: Callable[[], Any]) -> str:
        try:
            call()
            return "OK"
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"

    def _phase_after(self, search: Any, admin: Any) -> None:
        from search_svc.admin.backup import verify_backup

        r, crash = self.result, self.crash
        before = self._acked()
        for i in range(20):
            exc = self._write(search, deleting=i % 5 == 4)
            if exc is not None:
                r.problems.append(f"a write after space returned failed: {exc.code().name}: {exc.details()}")
                break
        r.acked_after = self._acked() - before
        answer = self._admin_call(lambda: admin.backup("after-full-disk"))
        if answer == "OK":
            # checked now (the trial restore goes to a scratch folder off the small disk), then removed: on
            # tmpfs a backup takes ~3x the index, and opening the store again offline needs that space back
            folder = crash.data / "backups" / "after-full-disk"
            problems = verify_backup(folder)[1]
            r.backup_after_ok = not problems
            shutil.rmtree(folder)
            if problems:
                r.problems.append(f"the backup taken after space returned does not verify: {problems[:2]}")
        else:
            r.problems.append(f"a backup after space returned failed: {answer}")
        target = next(g for g in crash.generations if g != crash.admin_ledger.active)
        for gen in (target, crash.generations[0]):  # there and back: the checks below read the main generation
            answer = self._admin_call(lambda: admin.switch(gen, force=True))  # noqa: B023 - called at once
            if answer == "OK":
                crash.admin_ledger.active = gen
            else:
                r.problems.append(f"a generation switch after space returned failed: {answer}")
                break

    def _stop_and_check(self) -> None:
        from cmr.security.audit import read_entries
        from search_svc.admin.backup import verify_backup

        r, crash = self.result, self.crash
        code = crash.process.stop()
        if code != 0:
            r.problems.append(f"the service did not stop cleanly on SIGTERM (exit {code})")
        check = check_store(crash.index_dir, crash.exams, crash.reports, np.random.default_rng(1))
        problems = self.ledger.check(check.stored, check.duplicated)
        r.stored, r.lost, r.duplicated = len(check.stored), len(problems.lost) + len(problems.resurrected), \
            len(problems.duplicated)
        r.wrong = len(problems.wrong) + len(problems.phantom)
        if problems.count:
            r.problems.append(f"store after the full disk: {problems.summary()}")
        if check.half_written:
            r.problems.append(f"{len(check.half_written)} exams without their report point (or the reverse)")
        if check.search_mismatches:
            r.problems.append(f"{check.search_mismatches} searches differ from exact search")
        r.table_ok = not check.table_problem and check.active == crash.admin_ledger.active
        if not r.table_ok:
            r.problems.append(f"generation table: {check.table_problem or check.active!r}, expected "
                              f"{crash.admin_ledger.active!r}")
        bad = {b: p for b in crash.admin_ledger.backups
               for p in [verify_backup(crash.data / "backups" / b)[1]] if p}
        r.backups_ok = not bad
        if bad:
            r.problems.append(f"backups that no longer verify: {bad}")
        r.audit_ok, audited, problem = check_audit(crash.data / "audit")
        r.audit_missing = (max(0, self.ledger.acked_upserts - audited["upsert"])
                           + max(0, self.ledger.acked_deletes - audited["delete"]))
        if not r.audit_ok or r.audit_missing:
            r.problems.append(f"audit: {problem or f'{r.audit_missing} acknowledged writes unaudited'}")
        log = crash.process.log.read_text(errors="replace")
        r.audit_entries_lost_full = log.count("audit entry could not be written")
        r.flush_failures = log.count("index log sync failed")
        r.audit_reserve_released = log.count("reserve is released")
        r.audit_refusals_recorded = sum(e.status in REFUSED_CODES and e.action in ("upsert", "delete")
                                        for e in read_entries(crash.data / "audit"))
        if r.audit_entries_lost_full or r.audit_refusals_recorded < r.refused:
            r.problems.append(f"audit on the full disk: {r.audit_entries_lost_full} entries not written, "
                              f"{r.audit_refusals_recorded} of {r.refused} refused writes recorded")

    def _restart(self) -> None:
        r, crash = self.result, self.crash
        search, _ = crash.clients()
        crash.process.spawn()
        try:
            r.restart_s = round(crash.process.wait_ready(search), 2)
            r.restarted = True
            if self.ledger.present():
                search.get(self.ledger.present()[0])
        except (RuntimeError, grpc.RpcError) as exc:
            r.problems.append(f"restart after the full disk failed: {exc}")
        finally:
            search.close()
            crash.process.stop()
            crash.process.kill()


__all__ = ["DiskFullResult", "DiskFullRun", "MountRefused", "SmallDisk", "fill"]
