"""``python -m azlin_lifecycle.simulator --vms N --dir DIR``: run a fleet until SIGTERM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .fleet import SimulatedFleet
from .runner import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m azlin_lifecycle.simulator")
    parser.add_argument("--vms", type=int, default=3)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--boot-seconds", type=float, default=5.0)
    parser.add_argument("--operation-seconds", type=float, default=1.0)
    parser.add_argument("--command-seconds", type=float, default=0.0,
                        help="how long the metrics command runs on a VM before it answers "
                        "(a real VM sleeps metrics_wire.CPU_SAMPLE_SECONDS); default 0")
    parser.add_argument("--public", action="store_true",
                        help="VMs with a public IP (default: private, behind a stand-in "
                        "Azure Bastion, as azlin makes them)")
    args = parser.parse_args(argv)
    fleet = SimulatedFleet(args.dir, args.vms, boot_seconds=args.boot_seconds,
                           operation_seconds=args.operation_seconds,
                           command_seconds=max(0.0, args.command_seconds),
                           private=not args.public)
    serve_forever(fleet, lambda f, s: print(
        f"simulator: {len(f.vm_names)} VMs, ARM {f.arm_endpoint}, ready in {s:.2f} s",
        file=sys.stderr, flush=True))


if __name__ == "__main__":
    main()
