"""`aitbc-agent`: run / probe / attest / status / config check; the only place that catches
everything.

Exit codes: 0 ok, 1 other agent error, 3 `status`: the agent is not running, 69 no GPU access
(EX_UNAVAILABLE), 70 a bug (EX_SOFTWARE), 78 bad configuration (EX_CONFIG). stdout carries only
command output; logs go to stderr.

`run` calls `agent.service.daemon.run(settings, config_path=PATH) -> int` and `status` calls
`agent.service.status_cmd.main(settings, as_json=BOOL) -> int`; both are imported only when used.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import DEFAULT_CONFIG_PATH, AgentSettings, load_settings, read_toml
from agent.config_messages import exposed_inline_key
from agent.errors import EX_SOFTWARE, AgentError, ConfigError
from agent.gpu.errors import GpuError
from agent.log import LEVELS, configure_logging, get_logger

log = get_logger("agent.cli")


def _config_path(args: argparse.Namespace, *, must_exist: bool) -> Path | None:
    """The config file to read: `--config`, else the default path.

    A `--config` the operator named must exist, always: a typo must not turn into defaults. The
    default file may be missing only where `must_exist` is False (`probe`, `status`): those are
    what an operator runs on a fresh host before writing any config, to see the GPUs or what a
    previous install left, and defaults are right for them; a note on stderr says so. `run` and
    `config check` need the file: the daemon on defaults would talk to 127.0.0.1 with no key
    and its own idea of the state directory, "running" while doing nothing useful.
    """
    if args.config is not None:
        return Path(args.config)
    if must_exist or DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    log.warning(
        "config_file_missing",
        path=str(DEFAULT_CONFIG_PATH),
        using="defaults and AITBC_AGENT_* environment",
    )
    return None


def _load(
    args: argparse.Namespace, *, must_exist: bool = False
) -> tuple[AgentSettings, Path | None]:
    path = _config_path(args, must_exist=must_exist)
    settings = load_settings(path)
    exposed = None if path is None else exposed_inline_key(path, read_toml(path))
    if exposed is not None:
        log.warning("api_key_readable_by_others", problem=exposed)
    return settings, path


def _late_command(module: str, function: str) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None
    fn: Callable[..., Any] = getattr(mod, function)
    return fn


def cmd_run(args: argparse.Namespace) -> int:
    """Start the daemon (agent/daemon.py)."""
    settings, path = _load(args, must_exist=True)
    # No key at all is a config error (exit 78: systemd does not restart it), not a daemon
    # that starts only to collect 401s.
    settings.coordinator.require_api_key()
    run = _late_command("agent.service.daemon", "run")
    if run is None:
        sys.stderr.write(
            "aitbc-agent run: the daemon is not part of this build (no agent.service.daemon)\n"
        )
        return 1
    return int(run(settings, config_path=path) or 0)


def cmd_status(args: argparse.Namespace) -> int:
    """Show GPUs, leases and the last heartbeat from the state directory."""
    settings, _ = _load(args)
    status = _late_command("agent.service.status_cmd", "main")
    if status is None:
        sys.stderr.write(
            "aitbc-agent status: not part of this build (no agent.service.status_cmd)\n"
        )
        return 1
    return int(status(settings, as_json=args.json) or 0)


def cmd_probe(args: argparse.Namespace) -> int:
    """Read every configured GPU once and print a table or the JSON document."""
    from agent.gpu import make_backend
    from agent.gpu.probe import probe_document

    settings, _ = _load(args)
    backend = make_backend(settings.gpu, settings.health)
    system = backend.open()
    try:
        samples = backend.sample()
        doc = probe_document(backend.kind, system, backend.gpus(), samples)
    finally:
        backend.close()
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print_table(doc)
    sys.stdout.flush()  # the log line (stderr) after the output, never above or inside it
    log.info("probe_finished", backend=backend.kind, gpus=len(doc["gpus"]))
    return 0


def cmd_attest(args: argparse.Namespace) -> int:
    """Attest the GPUs (NVML checks, CUDA self-test) and print the verdicts."""
    from agent.attest.command import attest_command

    settings, _ = _load(args)
    return attest_command(settings, as_json=args.json, only=args.gpu, refuse=_leased_gpus(settings))


def _leased_gpus(settings: AgentSettings) -> dict[str, str]:
    """GPUs the running agent has leased (from its state file): the self-test must not fill
    a tenant's GPU. An unreadable state file leaves none out (a tenant's memory makes the
    fill fail anyway; it never touches the tenant's)."""
    from agent.lease.state import StateStore

    try:
        state = StateStore(settings.agent.state_dir).load()
    except AgentError as exc:
        log.warning("attest_state_unreadable", error=str(exc))
        return {}
    return {
        lease.gpu_uuid: f"leased (booking {lease.booking_id}): attest it once the lease ends"
        for lease in state.leases.values()
        if lease.active
    }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.0f}{unit}"
    return f"{value}{unit}"


def _print_table(doc: dict[str, Any]) -> None:
    from agent.service.tables import Column, render, short_uuid

    title = (
        f"{doc['backend']} · driver {doc['driver_version'] or '—'}"
        f" · CUDA {doc['cuda_driver_version'] or '—'}"
    )
    colours = {"ok": "green", "degraded": "yellow", "unhealthy": "red", "lost": "red"}
    rows: list[dict[str, str]] = []
    for g in doc["gpus"]:
        health = g["health"] or "—"
        if g["health_reason"]:
            health += f" ({g['health_reason']})"
        rows.append(
            {
                "#": str(g["index"]),
                "model": g["name"] or "—",
                "uuid": g["uuid"] or "—",
                "memory MiB": f"{_fmt(g['memory_used_mib'])}/{_fmt(g['memory_total_mib'])}",
                "util": _fmt(g["utilization_pct"], " %"),
                "temp": _fmt(g["temperature_c"], " °C"),
                "power": _fmt(g["power_draw_w"], " W"),
                "health": health,
                "style": colours.get(g["health"] or "", ""),
            }
        )
        for m in g["mig_devices"]:
            rows.append(
                {
                    "#": f"{g['index']}.{m['index']}",
                    "model": f"  MIG {m['profile'] or '?'}",
                    "uuid": m["uuid"] or "—",
                    "memory MiB": _fmt(m["memory_total_mib"]),
                    "style": "",
                }
            )
    # Higher priority gives way first when the terminal is narrow; 0 never does.
    layout = [("#", 0), ("model", 0), ("uuid", 1), ("memory MiB", 0), ("util", 2)]
    layout += [("temp", 3), ("power", 4), ("health", 0)]
    columns = [
        Column(
            header,
            [r.get(header, "") for r in rows],
            priority=priority,
            shorten=short_uuid if header == "uuid" else None,
            styles=[r["style"] if header == "health" else "" for r in rows],
        )
        for header, priority in layout
    ]
    render(title, columns, caption=None if doc["gpus"] else "no GPUs")


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate a config file; print a one-line summary."""
    settings, path = _load(args, must_exist=True)
    key_file = settings.coordinator.api_key_file
    if key_file is not None and not key_file.exists():
        # `run` would exit 78 on this, whoever runs it: so does the check.
        raise ConfigError(f"coordinator.api_key_file {str(key_file)!r} does not exist")
    key_problem: ConfigError | None = None
    try:
        settings.coordinator.require_api_key()
    except ConfigError as exc:
        key_problem = exc
    if key_problem is not None:
        # A warning, not a failure: the key may be a systemd credential (not visible from a
        # shell) or a file only the agent's user can read. `run` refuses to start without it.
        log.warning("api_key_not_found", problem=str(key_problem))
    summary = (
        f"gpu backend {settings.gpu.backend}, coordinator {', '.join(settings.coordinator.urls)}"
    )
    sys.stdout.write(f"{path}: ok ({summary})\n")
    return 0


EXIT_CODES = """exit codes:
  0   done
  1   attest: a GPU is not verified; else another agent error (see the log line command_failed)
  3   status: the agent is not running (its last values are shown, marked stale)
  69  no GPU access: NVML cannot be used (driver missing, driver/library mismatch)
  70  a bug (command_crashed, with a traceback)
  74  run: the state file cannot be read or written
  78  bad configuration: an unknown or invalid key, no config file, no API key"""

ENVIRONMENT = """configuration: --config PATH (default /etc/aitbc-agent/agent.toml; every key in
docs/configuration.md). AITBC_AGENT_<SECTION>__<KEY> overrides a key of the file, e.g.
AITBC_AGENT_COORDINATOR__URL=http://10.0.0.5:8000; an unknown one is an error (exit 78)."""

# name → (help, description, examples)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": (
        "run the agent daemon",
        "Register this host's GPUs with the coordinator, heartbeat, and run leases (their "
        "on_start / on_end hooks) until SIGTERM. Under systemd: Type=notify, SIGHUP reloads.",
        "  aitbc-agent run --config /etc/aitbc-agent/agent.toml\n"
        "  AITBC_AGENT_COORDINATOR__API_KEY_FILE=./key aitbc-agent run --config ./agent.toml",
    ),
    "probe": (
        "read the GPUs once and print them",
        "Read every GPU through the configured backend ([gpu] backend) and print a table, or "
        "one JSON document with --json. Never contacts the coordinator.",
        "  aitbc-agent probe\n  aitbc-agent probe --json | jq '.gpus[] | {index, uuid, health}'",
    ),
    "status": (
        "show the agent's state",
        "Show what the running agent last wrote (GPUs, leases, coordinator, last heartbeat) "
        "from its state directory; no coordinator call.",
        "  sudo -u aitbc-agent aitbc-agent status\n  aitbc-agent status --json",
    ),
    "attest": (
        "prove the GPUs are what they claim",
        "Check each GPU's NVML facts against the model table (PCI device id, memory, compute "
        "capability, BAR1, clocks, the board behind the UUID), then run the CUDA self-test: "
        "fill most of the claimed memory with a fresh challenge, read it back at positions "
        "drawn after the fill, time an FMA kernel and a copy against the datasheet. Leased "
        "GPUs are left out. Exit 1 when any GPU is not verified.",
        "  aitbc-agent attest\n  aitbc-agent attest --json | jq '.gpus[] | {uuid, verified}'\n"
        "  aitbc-agent attest --gpu 0 --gpu 3",
    ),
    "check": (
        "validate a config file",
        "Validate every key of the config file and refuse what `run` would refuse; print a "
        "one-line summary.",
        "  aitbc-agent config check --config /etc/aitbc-agent/agent.toml",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="aitbc-agent",
        description="AITBC GPU miner agent: offers this host's GPUs to a coordinator and runs "
        "their leases.",
        epilog=f"{EXIT_CODES}\n\n{ENVIRONMENT}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", choices=LEVELS, default="info", help="(default info)")
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines even on a TTY"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        parent: Any, name: str, func: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        help_, description, examples = _COMMANDS[name]
        p: argparse.ArgumentParser = parent.add_parser(
            name,
            help=help_,
            description=description,
            epilog=f"examples:\n{examples}\n\n{EXIT_CODES}\n\n{ENVIRONMENT}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--config", metavar="PATH", help=f"config file (default {DEFAULT_CONFIG_PATH})"
        )
        p.set_defaults(func=func)
        return p

    command(sub, "run", cmd_run)
    probe = command(sub, "probe", cmd_probe)
    probe.add_argument("--json", action="store_true", help="one JSON document on stdout")
    attest = command(sub, "attest", cmd_attest)
    attest.add_argument("--json", action="store_true", help="one JSON document on stdout")
    attest.add_argument(
        "--gpu", type=int, action="append", metavar="INDEX", help="only this GPU (repeatable)"
    )
    status = command(sub, "status", cmd_status)
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    config = sub.add_parser("config", help="configuration commands")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    command(config_sub, "check", cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `aitbc-agent` and `python -m agent`; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)
    try:
        code: int = args.func(args)
    except (AgentError, GpuError) as exc:
        # An expected failure: the message says what to fix; a traceback would only hide it.
        log.error(  # noqa: TRY400
            "command_failed", command=args.command, error=str(exc), exit_code=exc.exit_code
        )
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:  # the one catch-all: a bug must still exit non-zero with a trace in the log
        log.exception("command_crashed", command=args.command)
        return EX_SOFTWARE
    return code
