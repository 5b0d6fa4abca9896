"""A real one-node SLURM cluster for tests, from Debian's packages (slurmctld, slurmd, slurm-client, munge): munged,
slurmctld and slurmd run in the foreground from a scratch directory (every path, key and socket under it; nothing
system-wide is written), the node reached on 127.0.0.1 only, with ``gpus`` fake GPUs (character devices made with
``mknod c 1 3``, listed in gres.conf) so array tasks get CUDA_VISIBLE_DEVICES as on a GPU node. The daemons
listen on 127.0.0.1 only when the host name resolves to a loopback address (else on all interfaces, as SLURM does
by default; every connection still goes to 127.0.0.1); stopping cancels every job first.

Needs root (slurmd runs jobs as their user and mknod needs CAP_MKNOD) and the packages (`make test` installs them
as root on Debian/Ubuntu, through `make slurm-deps`). Where either is missing the tests that need the cluster skip
with one line saying why and how to run them; CLOSEKIT_REQUIRE_SLURM=1 (.ci/run sets it) makes that a failure.
"""
import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REQUIRE_ENV = "CLOSEKIT_REQUIRE_SLURM"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
PACKAGES = "slurmctld slurmd slurm-client munge"

SLURM_CONF = """\
ClusterName=closekit-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge.sock
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
KillWait=5
{comm}SlurmctldAddr=127.0.0.1
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 Gres=gpu:{gpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _missing():
    """Why this machine cannot start the cluster (None when it can)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "not root (slurmd and mknod need it)"
    gone = [b for b in BINARIES if shutil.which(b) is None]
    if gone:
        return f"{', '.join(gone)} not installed"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout, what, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    tail = "\n".join(f"--- {p}\n" + "\n".join(Path(p).read_text(errors="replace").splitlines()[-15:])
                     for p in logs if Path(p).exists())
    raise RuntimeError(f"SLURM test cluster: {what} not ready after {timeout} s\n{tail}")


class Cluster:
    """munged + slurmctld + slurmd under ``root``; ``env`` points the SLURM clients at it."""

    def __init__(self, root, gpus=2, cpus=2):
        self.root, self.gpus, self.cpus, self.procs = Path(root), gpus, cpus, []
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.partition = "debug"

    def _start(self, *cmd):
        log = open(self.root / f"{Path(cmd[0]).name}.stdout", "w")
        p = subprocess.Popen(list(cmd), env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def start(self):
        d = self.root
        for sub in ("state", "spool"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "munge.key").write_bytes(os.urandom(1024))
        os.chmod(d / "munge.key", 0o400)
        self._start("munged", "--foreground", "--force", f"--socket={d}/munge.sock", f"--key-file={d}/munge.key",
                    f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munge.seed")
        _wait(lambda: (d / "munge.sock").exists(), 10, "munged", [d / "munged.log", d / "munged.stdout"])
        devs = []
        for i in range(self.gpus):
            dev = d / f"fakegpu{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))     # a character device, like /dev/null
            devs.append(dev)
        gres = f"AutoDetect=off\nNodeName={self.host} Name=gpu File={d}/fakegpu[0-{self.gpus - 1}]\n"
        (d / "gres.conf").write_text(gres)
        # the daemons bind the address their host name resolves to: loopback only when that is a loopback address
        # (every connection goes to 127.0.0.1 either way)
        loopback = socket.gethostbyname(self.host).startswith("127.")
        comm = "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny\n" if loopback else ""
        self.conf.write_text(SLURM_CONF.format(host=self.host, dir=d, cpus=self.cpus, gpus=self.gpus, comm=comm,
                                               ctld_port=_free_port(), d_port=_free_port()))
        self._start("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._start("slurmd", "-D", "-f", str(self.conf))
        logs = [d / "slurmctld.log", d / "slurmd.log", d / "slurmctld.stdout", d / "slurmd.stdout"]
        _wait(self._idle, 30, "node idle in sinfo", logs)
        return self

    def _idle(self):
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"SLURM test cluster: {p.args[0]} exited with {p.returncode}; see {self.root}")
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return r.returncode == 0 and r.stdout.strip() == "idle"

    def run(self, *cmd):
        """A SLURM client command against this cluster; its CompletedProcess."""
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def stop(self, wait=20):
        """Cancel every job and wait for the queue to empty, stop the daemons by their pids (slurmd, slurmctld, then
        munged), then end the step daemons (slurmstepd) this cluster left: a stopped slurmd leaves them running."""
        import psutil
        if self.procs and self.procs[-1].poll() is None:
            ids = self.run("squeue", "-h", "-o", "%A").stdout.split()
            if ids:
                self.run("scancel", *ids)
                deadline = time.monotonic() + wait
                while self.run("squeue", "-h").stdout.strip() and time.monotonic() < deadline:
                    time.sleep(0.3)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
        left = []
        for p in psutil.process_iter(["name"]):
            try:
                if p.info["name"] == "slurmstepd" and p.environ().get("SLURM_CONF") == str(self.conf):
                    left += [p] + p.children(recursive=True)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        for p in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(left, timeout=5)


def require_cluster():
    """At a test module's import: skip the module in one line saying why and how to run it, where the cluster cannot
    start (CLOSEKIT_REQUIRE_SLURM=1: fail instead)."""
    why = _missing()
    if why:
        text = (f"SLURM test cluster: {why}; to run these tests, as root on Debian/Ubuntu: make slurm-deps "
                f"(apt-get install {PACKAGES}), then pytest tests/test_slurm.py")
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{text} ({REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(text, allow_module_level=True)


def cluster_fixture(tmp_path_factory, gpus=2, cpus=2):
    """Generator body of a pytest fixture: the started cluster, with SLURM_CONF set for the test process."""
    c = Cluster(tmp_path_factory.mktemp("slurm"), gpus, cpus)
    old = os.environ.get("SLURM_CONF")
    try:
        c.start()
        os.environ["SLURM_CONF"] = str(c.conf)
        yield c
    finally:
        c.stop()
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
