"""A private rsyslogd for the syslog comparison: installed if missing, started
on a free loopback TCP port with a generated config, writing one file in a
temp dir, stopped by its own pid.

It never touches the system's rsyslog: its own config (only ``imtcp``, no
``/dev/log``), its own pid file, its own work directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from .harness import wait_until

RSYSLOGD_CANDIDATES = ("/usr/sbin/rsyslogd", "/sbin/rsyslogd")


def find_rsyslogd() -> str | None:
    for path in RSYSLOGD_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("rsyslogd")


def ensure_installed() -> str:
    """The rsyslogd binary; installs the Debian package when running as root."""
    found = find_rsyslogd()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("rsyslogd is not installed and this is not root on Debian: apt-get install rsyslog")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "rsyslog"]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=True)
    found = find_rsyslogd()
    if not found:
        raise RuntimeError("apt-get install rsyslog succeeded but rsyslogd is not on the path")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """\
global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="msgonly" type="string" string="%msg%\\n")
*.* action(type="omfile" file="{out}" template="msgonly")
"""


class Rsyslogd:
    """``with Rsyslogd() as r:`` gives ``r.port`` and ``r.out`` (the file it writes)."""

    def __init__(self, binary: str | None = None):
        self.binary = binary or ensure_installed()
        self.dir = Path(tempfile.mkdtemp(prefix="secbus-bench-rsyslog-"))
        self.port = free_port()
        self.out = self.dir / "out.log"
        self.pidfile = self.dir / "rsyslogd.pid"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Rsyslogd":
        (self.dir / "work").mkdir()
        conf = self.dir / "rsyslog.conf"
        conf.write_text(CONFIG.format(work=self.dir / "work", port=self.port, out=self.out))
        self.proc = subprocess.Popen(
            [self.binary, "-n", "-f", str(conf), "-i", str(self.pidfile)],
            stdout=open(self.dir / "rsyslogd.stdout", "wb"), stderr=subprocess.STDOUT,
        )
        wait_until(self._listening, timeout=15, message=f"rsyslogd did not listen on 127.0.0.1:{self.port}; see {self.dir}")
        return self

    def _listening(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited with {self.proc.returncode}: {(self.dir / 'rsyslogd.stdout').read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def lines(self) -> int:
        try:
            with open(self.out, "rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except FileNotFoundError:
            return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Rsyslogd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
