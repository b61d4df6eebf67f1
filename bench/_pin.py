"""Where the bench's processes run. Pinned (the default on a machine with 2 cores or more): the
server under test (a gateway, or a floor or bare server in its turn) on one core of its own,
everything else (the driver and the emulator it hosts, the load generators, Redis, the OTLP
receiver) on the others. A process is pinned before it starts (`taskset -c` in front of its
command, so every thread it makes inherits the mask); Redis, already running, is pinned with
all its threads and put back as it was at the end.

Every placement is recorded (name, role, pid, the cores the kernel reports for it) for the
report."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

Cores = tuple[int, ...]


def cores_text(cores: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


def allowed(pid: int, tid: int | None = None) -> str:
    """The kernel's `Cpus_allowed_list` of a process (or one of its threads)."""
    path = f"/proc/{pid}/task/{tid}/status" if tid else f"/proc/{pid}/status"
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def pin_all_threads(pid: int, cores: Iterable[int]) -> None:
    """Pin every thread of a running process (what `taskset -a -p` does)."""
    mask = set(cores)
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), mask)


def thread_masks(pid: int) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            out[int(tid)] = os.sched_getaffinity(int(tid))
    return out


CoreTimes = dict[int, tuple[int, ...]]


def core_times() -> CoreTimes:
    """(busy, total, steal) jiffies of each core since boot (/proc/stat): busy is anyone's work
    in this machine (idle, iowait and steal left out); steal is time the hypervisor gave this
    virtual core's physical one to someone else."""
    out: CoreTimes = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *vals = line.split()
            v = [int(x) for x in vals] + [0] * 8
            steal = v[7]
            total = sum(v[:8])
            out[int(name[3:])] = (total - v[3] - v[4] - steal, total, steal)
    return out


def _share(before: CoreTimes, after: CoreTimes, cores: Sequence[int], i: int) -> float:
    cs = [c for c in cores if c in after and c in before]
    part = sum(after[c][i] - before[c][i] for c in cs)
    total = sum(after[c][1] - before[c][1] for c in cs)
    return part / total if total else float("nan")


def busy(before: CoreTimes, after: CoreTimes, cores: Sequence[int]) -> float:
    """Busy fraction of `cores` together between two `core_times` readings (anyone's work)."""
    return _share(before, after, cores, 0)


def steal(before: CoreTimes, after: CoreTimes, cores: Sequence[int]) -> float:
    """Fraction of the time the hypervisor ran someone else on `cores`' physical cores."""
    return _share(before, after, cores, 2)


@dataclass
class Placement:
    name: str
    role: str
    pid: int
    cores: str  # what the kernel reports after the start


@dataclass
class Topology:
    """The cores of the server under test and of everything else, and what was put where."""

    pinned: bool
    server: Cores
    rest: Cores
    every: Cores
    placements: list[Placement] = field(default_factory=list)
    redis: str = "not used"
    _redis_restore: tuple[int, dict[int, set[int]]] | None = None

    @classmethod
    def detect(cls, *, pin: bool) -> Topology:
        every = tuple(sorted(os.sched_getaffinity(0)))
        if not pin or len(every) < 2 or shutil.which("taskset") is None:
            return cls(False, every, every, every)
        # The server gets the last core (the first one usually takes the most interrupts).
        return cls(True, (every[-1],), every[:-1], every)

    def cores(self, role: str, *, unpinned: bool = False) -> Cores | None:
        """The cores a new process of `role` ("server" or anything else) is started on; None:
        leave it as the driver's (unpinned topology)."""
        if not self.pinned:
            return None
        if unpinned:
            return self.every
        return self.server if role == "server" else self.rest

    def wrap(self, argv: Sequence[str], cores: Cores | None) -> list[str]:
        if cores is None:
            return list(argv)
        return ["taskset", "-c", cores_text(cores), *argv]

    def record(self, name: str, role: str, pid: int) -> None:
        self.placements.append(Placement(name, role, pid, allowed(pid)))

    def pin_driver(self) -> None:
        """The driver (and the emulator on its loop) with the load, before it starts threads;
        threads already there (imports may start some) are pinned too."""
        if self.pinned:
            pin_all_threads(os.getpid(), self.rest)
        self.record("driver + Graph emulator (python -m bench)", "driver", os.getpid())

    def pin_redis(self) -> None:
        """Pin the machine's Redis (found by its INFO process_id) with the load; put back by
        `restore_redis`. Says why when it cannot."""
        try:
            import redis

            info = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).info("server")
            pid = int(info["process_id"])
        except Exception as exc:
            self.redis = f"no Redis on 127.0.0.1:6379 ({type(exc).__name__})"
            return
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            self.redis = f"pid {pid} (from INFO) not visible here: unpinned"
            return
        if not comm.startswith("redis"):
            self.redis = f"pid {pid} is {comm!r}, not Redis: unpinned"
            return
        if not self.pinned:
            self.redis = f"redis-server pid {pid}: unpinned (cores {allowed(pid)})"
            return
        try:
            masks = thread_masks(pid)
            pin_all_threads(pid, self.rest)
        except OSError as exc:
            self.redis = f"redis-server pid {pid}: could not pin ({exc}); unpinned"
            return
        self._redis_restore = (pid, masks)
        self.redis = (
            f"redis-server pid {pid} (already running): all {len(masks)} threads pinned to "
            f"core {allowed(pid)} for the run, put back afterwards"
        )
        self.record("redis-server (the machine's)", "redis", pid)

    @contextlib.contextmanager
    def redis_unpinned(self) -> Iterator[None]:
        """Redis on every core while a block runs (scenario 6's unpinned topology)."""
        if self._redis_restore is None:
            yield
            return
        pid = self._redis_restore[0]
        self.redis += " (on every core while scenario 6 ran)"
        with contextlib.suppress(OSError):
            pin_all_threads(pid, self.every)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                pin_all_threads(pid, self.rest)

    def restore_redis(self) -> None:
        if self._redis_restore is None:
            return
        pid, masks = self._redis_restore
        for tid, mask in masks.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, mask)
        # Threads started meanwhile: the whole mask of the process as it was.
        first = next(iter(masks.values()), set(self.every))
        for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}") else ():
            if int(tid) not in masks:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), first)
        self._redis_restore = None

    def lines(self) -> list[str]:
        """The report's description of where things ran."""
        if not self.pinned:
            return [
                f"Unpinned: every process may run on any of cores {cores_text(self.every)} "
                "(`--no-pin`, or a machine with one core). Redis: " + self.redis + "."
            ]
        out = [
            f"Pinned: the **server under test on core {cores_text(self.server)}**, everything "
            f"else on core {cores_text(self.rest)}; each process was started under "
            "`taskset -c`, and the cores below are what the kernel reported for it after the "
            "start (`Cpus_allowed_list`). The driver (which hosts the Graph emulator) pinned "
            f"itself to core {cores_text(self.rest)} before starting anything.",
            "",
            f"- Redis: {self.redis}.",
            "",
            "| process | role | pid | cores |",
            "| --- | --- | ---: | --- |",
        ]
        loads = [p for p in self.placements if p.role == "load"]
        for p in self.placements:
            if p.role != "load":
                out.append(f"| {p.name} | {p.role} | {p.pid} | {p.cores} |")
        if loads:
            by_cores: dict[str, list[Placement]] = {}
            for p in loads:
                by_cores.setdefault(p.cores, []).append(p)
            for c, ps in by_cores.items():
                modes = sorted({p.name for p in ps})
                out.append(
                    f"| {len(ps)} load generators ({', '.join(modes)}), one per load | load | "
                    f"{ps[0].pid}, ... | {c} |"
                )
        return out
