"""The JSON control API under ``/_simulator/`` that SimulatorClient speaks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import SimulatorError
from ..models import VMMetrics

if TYPE_CHECKING:
    from .arm_api import ControlHandler
    from .fleet import SimulatedFleet


def make_control(fleet: SimulatedFleet) -> ControlHandler:
    def handle(method: str, path: str, body: Any) -> tuple[int, Any]:
        args: dict[str, Any] = body if isinstance(body, dict) else {}
        parts = path.strip("/").split("/")
        try:
            if method == "GET" and parts == ["status"]:
                return 200, fleet.status()
            if method == "GET" and parts == ["operations"]:
                return 200, fleet.operations()
            if method == "POST" and parts == ["arm-fault"]:
                fleet.set_arm_fault(int(args["status"]), int(args.get("count", 1)),
                                    args.get("retry_after"), bool(args.get("accept", False)))
                return 200, {"ok": True}
            if method == "POST" and parts == ["arm-latency"]:
                fleet.set_arm_latency(float(args["seconds"]))
                return 200, {"ok": True}
            if method == "POST" and parts == ["bastion"]:
                fleet.set_bastion_mode(str(args["mode"]))
                return 200, {"ok": True}
            if method == "POST" and parts == ["vms"]:
                return 200, {"added": fleet.add_vms(int(args["count"]))}
            if method == "POST" and parts == ["create-vm"]:
                tags = args.get("tags") or {}
                return 200, {"name": fleet.create_vm(
                    args.get("name"), session=args.get("session"),
                    tags={str(k): str(v) for k, v in dict(tags).items()})}
            if method == "POST" and len(parts) == 3 and parts[0] == "vms" \
                    and parts[2] == "delete":
                fleet.delete_vm(parts[1])
                return 200, {"ok": True}
            if method == "POST" and len(parts) == 3 and parts[0] == "vms":
                return _vm_command(fleet, parts[1], parts[2], args)
        except SimulatorError as exc:
            return 400, {"error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return 400, {"error": f"bad request: {exc!r}"}
        return 404, {"error": f"no control command {method} /_simulator/{path}"}

    return handle


def _vm_command(fleet: SimulatedFleet, name: str, command: str,
                args: dict[str, Any]) -> tuple[int, Any]:
    if command == "power":
        fleet.set_power_state(name, str(args["state"]))
    elif command == "ssh":
        fleet.set_ssh_mode(name, str(args["mode"]), float(args.get("slow_seconds", 5.0)))
    elif command == "guest":
        fleet.set_guest(name, str(args.get("agent", "auto")), args.get("app_health"))
    elif command == "health":
        fleet.set_health(name, str(args["state"]), **{
            k: args[k] for k in ("annotation", "context", "category", "reason_type", "summary",
                                 "eta_minutes") if args.get(k) is not None})
    elif command == "boot-diagnostics":
        fleet.set_boot_diagnostics(name, str(args["mode"]))
    elif command == "maintenance":
        starts = args.get("starts_in")
        fleet.set_maintenance(name, None if starts is None else float(starts),
                              float(args.get("lasts", 3600.0)))
    elif command == "approval":
        fleet.set_approval(name, float(args["seconds"]))
    elif command == "metrics":
        fleet.set_metrics(name, VMMetrics(**args))
    elif command == "fail-next":
        fleet.fail_next_operation(name, str(args.get("action", "restart")),
                                  str(args.get("code", "InternalExecutionError")),
                                  str(args.get("message", "An internal execution error "
                                               "occurred. Please retry later.")))
    elif command == "refuse-next":
        fleet.refuse_next_request(name, str(args.get("action", "start")),
                                  status=int(args.get("status", 409)),
                                  code=str(args.get("code", "OperationNotAllowed")),
                                  message=str(args["message"]), details=args.get("details"))
    elif command == "hang":
        fleet.hang_operations(name, str(args.get("action", "restart")))
    elif command == "clear-faults":
        fleet.clear_operation_faults(name)
    elif command == "public-ip":
        fleet.set_public_ip(name, bool(args["enabled"]))
    else:
        return 404, {"error": f"no control command {command!r} for a VM"}
    return 200, {"ok": True}
