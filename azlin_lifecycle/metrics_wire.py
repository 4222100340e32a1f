"""The one remote command that reads a VM's metrics, and its output format.

The command prints raw kernel figures (two ``/proc/stat`` samples, ``/proc/loadavg``,
two ``/proc/meminfo`` lines, ``df`` of ``/``); percentages are computed here, on the
client, so the remote side needs nothing but a POSIX shell, ``head``, ``grep``, ``df``
and ``sleep``. A figure the VM did not print is None, never 0.

The simulator's SSH server answers this exact command with :func:`render_metrics`.
"""

from __future__ import annotations

from .models import VMMetrics

CPU_SAMPLE_SECONDS = 0.2

METRICS_COMMAND = (
    "LC_ALL=C; export LC_ALL; "
    'echo "stat1 $(head -n1 /proc/stat)"; '
    f"sleep {CPU_SAMPLE_SECONDS}; "
    'echo "stat2 $(head -n1 /proc/stat)"; '
    'echo "loadavg $(cat /proc/loadavg)"; '
    "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; "
    "df -P / | tail -n 1 | awk '{print \"disk \" $5}'"
)


def _cpu_times(line: str) -> tuple[int, int] | None:
    """(idle, total) jiffies from a ``cpu ...`` line of /proc/stat."""
    fields = line.split()
    if len(fields) < 5 or fields[0] != "cpu":
        return None
    try:
        values = [int(v) for v in fields[1:]]
    except ValueError:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return idle, sum(values[:8])


def parse_metrics(output: str) -> VMMetrics:
    stats: dict[str, tuple[int, int] | None] = {}
    load: list[float | None] = [None, None, None]
    mem: dict[str, int] = {}
    disk: float | None = None
    for raw in output.splitlines():
        key, _, rest = raw.strip().partition(" ")
        try:
            if key in ("stat1", "stat2"):
                stats[key] = _cpu_times(rest)
            elif key == "loadavg":
                parts = rest.split()
                load = [float(parts[i]) if i < len(parts) else None for i in range(3)]
            elif key in ("MemTotal:", "MemAvailable:"):
                mem[key[:-1]] = int(rest.split()[0])
            elif key == "disk" and rest.strip().endswith("%"):
                disk = float(rest.strip()[:-1])
        except (ValueError, IndexError):
            continue
    cpu: float | None = None
    first, second = stats.get("stat1"), stats.get("stat2")
    if first and second and second[1] > first[1]:
        busy = (second[1] - first[1]) - (second[0] - first[0])
        cpu = round(100.0 * busy / (second[1] - first[1]), 1)
    memory: float | None = None
    if mem.get("MemTotal") and "MemAvailable" in mem:
        memory = round(100.0 * (1 - mem["MemAvailable"] / mem["MemTotal"]), 1)
    return VMMetrics(
        cpu_percent=cpu,
        memory_percent=memory,
        disk_percent=disk,
        load_1m=load[0],
        load_5m=load[1],
        load_15m=load[2],
    )


def render_metrics(metrics: VMMetrics) -> str:
    """The output a VM with these metrics would print (used by the simulator).

    A None figure is left out of the output, as a VM that could not read it would.
    """
    lines: list[str] = []
    if metrics.cpu_percent is not None:
        busy = round(metrics.cpu_percent * 10)
        lines.append("stat1 cpu  1000 0 0 9000 0 0 0 0 0 0")
        lines.append(f"stat2 cpu  {1000 + busy} 0 0 {9000 + 1000 - busy} 0 0 0 0 0 0")
    if metrics.load_1m is not None:
        l5 = metrics.load_5m if metrics.load_5m is not None else metrics.load_1m
        l15 = metrics.load_15m if metrics.load_15m is not None else l5
        lines.append(f"loadavg {metrics.load_1m:.2f} {l5:.2f} {l15:.2f} 1/100 4242")
    if metrics.memory_percent is not None:
        total = 8_000_000
        lines.append(f"MemTotal:       {total} kB")
        lines.append(f"MemAvailable:   {round(total * (1 - metrics.memory_percent / 100))} kB")
    if metrics.disk_percent is not None:
        lines.append(f"disk {round(metrics.disk_percent)}%")
    return "\n".join(lines) + "\n"
