"""supervisord as the stack's process supervisor: the config written from the parts, the daemon started in
the foreground as a child of `cmr up` (its own session, so Ctrl-C reaches only `cmr up`, which then stops it
cleanly), and its XML-RPC interface over a unix socket for states (`cmr status`) and shutdown (`cmr down`)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cmr.layout import StackLayout
from cmr.lifetime import die_with_parent
from orchestration.stack.parts import Part


def _q(value: str) -> str:
    return value.replace("%", "%%")  # supervisord's config is read with %-interpolation


def render_config(parts: Sequence[Part], layout: StackLayout) -> str:
    sock = layout.supervisor_socket
    lines = [
        "; written by `cmr up` - each [program:x] is one part of the stack",
        "[unix_http_server]", f"file={_q(str(sock))}", "chmod=0700", "",
        "[supervisord]", f"logfile={_q(str(layout.logs_dir / 'supervisord.log'))}",
        f"pidfile={_q(str(layout.supervisor_pidfile))}", f"childlogdir={_q(str(layout.logs_dir))}",
        "nodaemon=true", "silent=true", "logfile_maxbytes=10MB", "logfile_backups=2", "loglevel=info", "",
        "[rpcinterface:supervisor]", "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "", "[supervisorctl]", f"serverurl=unix://{_q(str(sock))}", "",
    ]
    for p in parts:
        if not p.available:
            continue
        lines += [
            f"[program:{p.name}]",
            f"command={_q(shlex.join(p.command))}",
            f"directory={_q(str(Path.cwd()))}",
            f"priority={p.priority}",
            "autostart=true",
            # A service that dies is restarted (3 tries); a one-shot job (seeding) is not.
            "autorestart=false" if p.oneshot else "autorestart=true",
            f"startsecs={p.startsecs}",
            "startretries=3",
            "exitcodes=0",
            "stopsignal=TERM",
            f"stopwaitsecs={p.stopwaitsecs}",
            "stopasgroup=true",  # Triton, decoder workers and Streamlit's children go with their parent
            "killasgroup=true",
            f"stdout_logfile={_q(str(layout.log_of(p.name)))}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=1",
            "redirect_stderr=true",
        ]
        if p.env:
            env = ",".join(f'{k}="{_q(v)}"' for k, v in p.env.items())
            lines.append(f"environment={env}")
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class ProcessState:
    name: str
    state: str  # STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL, UNKNOWN
    exitstatus: int
    description: str


class SupervisorClient:
    """XML-RPC to a running supervisord through its unix socket."""

    def __init__(self, layout: StackLayout) -> None:
        from supervisor.xmlrpc import SupervisorTransport

        url = f"unix://{layout.supervisor_socket}"
        self._proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, url))
        self.layout = layout

    def alive(self) -> bool:
        if not self.layout.supervisor_socket.exists():
            return False
        try:
            return self._proxy.supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def states(self) -> dict[str, ProcessState]:
        return {i["name"]: ProcessState(i["name"], i["statename"], int(i["exitstatus"]), i["description"])
                for i in self._proxy.supervisor.getAllProcessInfo()}

    def shutdown(self) -> None:
        self._proxy.supervisor.shutdown()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when `cmr up` dies however it dies (even SIGKILL), so a killed launcher
    never leaves a stack running (Linux; elsewhere a no-op)."""
    die_with_parent(signal.SIGTERM)


class Supervisor:
    """supervisord as a child process: `start(parts)`, `client`, `stop()`."""

    def __init__(self, layout: StackLayout, env: dict[str, str]) -> None:
        self.layout = layout
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = SupervisorClient(layout)

    def start(self, parts: Sequence[Part], timeout_s: float = 20.0) -> Supervisor:
        self.layout.make()
        self.layout.supervisor_conf.write_text(render_config(parts, self.layout))
        if self.layout.supervisor_socket.exists():
            self.layout.supervisor_socket.unlink()  # left by a supervisord that was killed
        log = (self.layout.logs_dir / "supervisord.out").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c",
                                      str(self.layout.supervisor_conf)],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"supervisord exited ({self.proc.returncode}); see "
                                   f"{self.layout.logs_dir / 'supervisord.out'}")
            if self.client.alive():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"supervisord did not answer on {self.layout.supervisor_socket} in {timeout_s:.0f} s")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 120.0) -> int | None:
        """SIGTERM: supervisord stops every part in reverse priority order (each with its process group)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def running_pid(layout: StackLayout) -> int | None:
    """The pid of a supervisord already serving this data folder (a stack already up), or None."""
    try:
        pid = int(layout.supervisor_pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid if SupervisorClient(layout).alive() else None
