"""The search service SIGKILLed at random moments while a client streams Upserts and Deletes and an operator
takes backups and switches generations; after each kill the store is opened offline and checked against what
the clients were told (bench/crash_ledger.py), then the service is started again on the same folder.

Everything runs as deployed: `cmr serve search` (Qdrant Edge on disk) in its own process, TLS and JWT bearer
tokens on (a dev CA in the run's folder), the audit log written by the service and verified after each kill.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.crash_checks import SEARCH_QUERIES, check_audit, check_store
from bench.crash_process import ChildProcess
from bench.crash_clients import SECRET, AdminLedger, Operator, Writer
from bench.crash_ledger import Ledger, Problems

SPARE_VERSION = "crash-spare@1"  # a second, empty generation the operator switches to and back
RPC_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 120.0


@dataclass
class KillRecord:
    """One kill: when it landed, what was in flight, and what the checks found after it."""

    n: int
    phase: str                    # "serving" (writes streaming) or "starting" (recovery / index build)
    after_s: float                # seconds after the process was spawned
    acked_upserts: int            # acknowledged so far (cumulative)
    acked_deletes: int
    in_flight: int                # study keys whose write had no answer when the process died
    kept_in_flight: int           # of those, how many the store kept
    stored: int                   # exams stored after the restart
    problems: str                 # the ledger check ("none" when every acknowledged write is as promised)
    lost: int
    duplicated: int
    search_mismatches: int        # queries whose top-k differs from exact search over what is stored
    table_ok: bool
    backup_ok: bool               # the last acknowledged backup still verifies
    audit_ok: bool
    audit_missing: int            # acknowledged writes without an audit entry
    restart_s: float              # spawn -> SERVING after this kill
    restarted: bool


@dataclass
class SearchCrashResult:
    kills: list[KillRecord] = field(default_factory=list)
    acked_upserts: int = 0
    acked_deletes: int = 0
    backups: int = 0
    backups_started: int = 0  # by the operator during the kill rounds (a kill interrupts the rest)
    switches: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    failed_restarts: int = 0
    search_mismatches: int = 0
    audit_failures: int = 0
    half_written_unacked: int = 0  # unacknowledged Upserts left with an exam point and no report point (max)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class SearchProcess(ChildProcess):
    """`cmr serve search` on a fixed port and data folder, output appended to one log."""

    def __init__(self, work: Path, port: int, env: dict[str, str]) -> None:
        super().__init__([sys.executable, "-m", "orchestration.cli.main", "serve", "search", "--port", str(port),
                          "--encoder-url", "127.0.0.1:9"], env, work / "search.log")
        self.work, self.port = work, port

    def wait_ready(self, client: Any) -> float:
        """Seconds from spawn to SERVING; RuntimeError when the process died instead."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"the search service exited while starting (exit {code}); log tail:\n{self.tail()}")
            try:
                client.wait_ready(1.0)
                return time.monotonic() - self.spawned_at
            except TimeoutError:
                continue
        raise RuntimeError(f"the search service was not SERVING after {READY_TIMEOUT_S:.0f} s:\n{self.tail()}")


class SearchCrashRun:
    """Drives the kills; `run(kills)` returns the per-kill records and the totals."""

    def __init__(self, work: Path, seed: int = 20, serve_s: tuple[float, float] = (1.0, 4.0),
                 starting_kill_share: float = 0.2, extra_env: dict[str, str] | None = None) -> None:
        """extra_env: more settings for the service process (the disk-full phase: the free-space reserve)."""
        from bench.load_stack import Security
        from cmr.config import Settings
        from cmr.rpc.ports import free_ports

        self.work = work
        self.data = work / "data"
        self.index_dir = self.data / "index"
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.serve_s, self.starting_kill_share = serve_s, starting_kill_share
        self.security = Security.create(True, work / "security")
        port = free_ports(1)[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
        env.update(self.security.env("search"))
        env.update({"CMR_DATA_DIR": str(self.data), "CMR_STUDY_KEY_SECRET": SECRET, "CMR_TORCH_THREADS": "1",
                    "CMR_RATE_LIMIT_PER_S": "100000", "CMR_RATE_LIMIT_BURST": "100000"})
        env.update(extra_env or {})
        self.process = SearchProcess(work, port, env)
        base = Settings(data_dir=self.data, request_timeout_s=RPC_TIMEOUT_S)
        self.writer_settings = self.security.service_settings(base, "ingest")
        self.admin_settings = self.security.service_settings(base, "client")  # the operator's token: admin
        self.ledger = Ledger()
        self.admin_ledger = AdminLedger()
        self.next_uid = [0]
        self.half_written: set[str] = set()
        self.backup_seq = [0]
        self.uids: dict[str, str] = {}
        self.generations: tuple[str, str] = ("", "")
        self.exams = self.reports = ""
        self.model_version, self.dim = "", 0

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.process.port}"

    def clients(self) -> tuple[Any, Any]:
        from search_svc.admin.client import AdminClient
        from search_svc.client import SearchClient

        return (SearchClient(self.url, settings=self.writer_settings, timeout_s=RPC_TIMEOUT_S),
                AdminClient(self.url, settings=self.admin_settings, timeout_s=RPC_TIMEOUT_S))

    def first_start(self, backup: bool = True) -> float:
        """Start the service, add the spare generation and (backup) take backup b000; seconds to SERVING."""
        self.process.spawn()
        search, admin = self.clients()
        try:
            took = self.process.wait_ready(search)
            listing = admin.generations()
            gen = next(g for g in listing.generations if g.active)
            self.model_version, self.dim = gen.model_version, gen.dim
            self.exams, self.reports = gen.exams_collection, gen.reports_collection
            spare = admin.start_upgrade(SPARE_VERSION, gen.dim)
            self.generations = (gen.name, spare.name)
            self.admin_ledger.active = gen.name
            if backup:  # one acknowledged backup from the start: every kill checks the latest
                admin.backup("b000")
                self.admin_ledger.backups.append("b000")
        finally:
            search.close()
            admin.close()
        return took

    def _serve_and_kill(self, n: int) -> tuple[str, float]:
        """Start writers against the running service, SIGKILL it at a random moment; (phase, seconds since
        spawn). A share of the kills land while the next process starts (recovery and the index build)."""
        search, admin = self.clients()
        writer = Writer(search, self.ledger, random.Random(self.rng.random()), self.model_version, self.dim,
                        self.next_uid, self.uids, self.process.alive)
        operator = Operator(admin, self.admin_ledger, self.generations, random.Random(self.rng.random()),
                            self.backup_seq, self.process.alive)
        writer.start()
        operator.start()
        time.sleep(self.rng.uniform(*self.serve_s))
        after = time.monotonic() - self.process.spawned_at
        self.process.kill()
        for t in (writer, operator):
            t.halt.set()
            t.join(RPC_TIMEOUT_S + 5)
        search.close()
        admin.close()
        for t in (writer, operator):
            if t.error is not None:
                raise RuntimeError(f"{t.name}: {t.error}") from t.error
        return "serving", after

    def _kill_while_starting(self, typical_start_s: float) -> tuple[str, float]:
        self.process.spawn()
        time.sleep(self.rng.uniform(0.3, max(0.4, typical_start_s)))
        after = time.monotonic() - self.process.spawned_at
        self.process.kill()
        return "starting", after

    def _check(self, n: int, phase: str, after: float, result: SearchCrashResult) -> KillRecord:
        from search_svc.admin.backup import verify_backup

        in_flight_keys = set(self.ledger.in_flight)
        in_flight = len(in_flight_keys)
        check = check_store(self.index_dir, self.exams, self.reports, self.nprng)
        problems: Problems = self.ledger.check(check.stored, check.duplicated)
        kept = self.ledger.settle(check.stored)
        table_ok = not check.table_problem and check.active in self.admin_ledger.allowed_active()
        if not table_ok:
            result.problems.append(f"kill {n}: generation table: {check.table_problem or check.active!r} not in "
                                   f"{sorted(self.admin_ledger.allowed_active())}")
        if check.active:
            self.admin_ledger.active, self.admin_ledger.switching_to = check.active, ""
        backup_ok = True
        if self.admin_ledger.backups:
            _, backup_problems = verify_backup(self.data / "backups" / self.admin_ledger.backups[-1])
            backup_ok = not backup_problems
            if backup_problems:
                result.problems.append(f"kill {n}: acknowledged backup {self.admin_ledger.backups[-1]}: "
                                       f"{backup_problems[:2]}")
        audit_ok, audited, audit_problem = check_audit(self.data / "audit")
        missing = (max(0, self.ledger.acked_upserts - audited["upsert"])
                   + max(0, self.ledger.acked_deletes - audited["delete"]))
        if not audit_ok or missing:
            result.audit_failures += 1
            result.problems.append(f"kill {n}: audit: {audit_problem or f'{missing} acknowledged writes unaudited'}")
        if problems.count:
            result.problems.append(f"kill {n}: {problems.summary()}")
        # An Upsert writes the exam point, then the report point: one cut between them is half-applied. That is
        # allowed for a write never acknowledged (its client retries it); for anything else it is a problem.
        self.half_written = (self.half_written | (check.half_written & in_flight_keys)) & check.half_written
        result.half_written_unacked = max(result.half_written_unacked, len(self.half_written))
        bad_half = check.half_written - self.half_written
        if bad_half:
            result.problems.append(f"kill {n}: {len(bad_half)} acknowledged exams without their report point "
                                   f"(or the other way round), e.g. {sorted(bad_half)[:2]}")
        if check.search_mismatches:
            result.problems.append(f"kill {n}: {check.search_mismatches}/{SEARCH_QUERIES} searches differ from "
                                   "exact search")
        result.lost += len(problems.lost) + len(problems.resurrected)
        result.wrong += len(problems.wrong) + len(problems.phantom)
        result.duplicated += len(problems.duplicated)
        result.search_mismatches += check.search_mismatches
        return KillRecord(n=n, phase=phase, after_s=round(after, 2), acked_upserts=self.ledger.acked_upserts,
                          acked_deletes=self.ledger.acked_deletes, in_flight=in_flight, kept_in_flight=kept,
                          stored=len(check.stored), problems=problems.summary(), lost=len(problems.lost),
                          duplicated=len(problems.duplicated), search_mismatches=check.search_mismatches,
                          table_ok=table_ok, backup_ok=backup_ok, audit_ok=audit_ok, audit_missing=missing,
                          restart_s=0.0, restarted=False)

    def _restart(self, record: KillRecord, result: SearchCrashResult) -> None:
        search, _ = self.clients()
        self.process.spawn()
        try:
            record.restart_s = round(self.process.wait_ready(search), 2)
            record.restarted = True
            partial = sorted(p.name for p in (self.data / "backups").glob(".*.partial"))
            if partial:
                result.problems.append(f"kill {record.n}: half-written backups left after the restart: {partial}")
        except RuntimeError as exc:
            result.failed_restarts += 1
            result.problems.append(f"kill {record.n}: restart failed: {exc}")
        finally:
            search.close()

    def run(self, kills: int, progress: Any = None) -> SearchCrashResult:
        result = SearchCrashResult()
        start_s = self.first_start()
        try:
            for n in range(1, kills + 1):
                if n > 1 and self.rng.random() < self.starting_kill_share:
                    # the previous restart is already up: kill the process during its own start-up instead
                    self.process.kill()
                    phase, after = self._kill_while_starting(start_s)
                else:
                    phase, after = self._serve_and_kill(n)
                record = self._check(n, phase, after, result)
                self._restart(record, result)
                result.kills.append(record)
                if progress is not None:
                    progress(record)
                if not record.restarted:
                    break
            # the last process is stopped cleanly: a SIGTERM must also lose nothing
            self.process.stop()
            final = self._check(kills + 1, "stopped", 0.0, result)
            if final.problems != "none":
                result.problems.append(f"after the clean stop: {final.problems}")
        finally:
            self.process.kill()
        result.acked_upserts, result.acked_deletes = self.ledger.acked_upserts, self.ledger.acked_deletes
        result.backups, result.switches = len(self.admin_ledger.backups), self.admin_ledger.switches
        result.backups_started = self.admin_ledger.backups_started
        return result
