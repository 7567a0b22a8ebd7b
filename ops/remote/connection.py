"""SSH connections to the stack's nodes: Fabric `Connection`s and `ThreadingGroup`s with a strict host-key
policy, key-only auth, timeouts and retries with backoff.

Host keys: a key not in the known_hosts file is refused (paramiko's RejectPolicy) unless the operator asked
for first-contact acceptance (`accept_new_host_keys`, like OpenSSH's `StrictHostKeyChecking=accept-new`), in
which case it is recorded. A key that *changed* is always refused. Every remote command is an argument list
joined with `shlex.join`; nothing is pasted into a shell line.
"""

from __future__ import annotations

import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ops.errors import OpsError
from ops.remote.settings import ENV, ClusterSettings

RUNBOOK = "docs/cluster.md"
_known_hosts_lock = threading.Lock()


def _accept_new_policy(known_hosts: Path):
    """A paramiko policy that records unknown host keys in `known_hosts` (first contact only)."""
    import paramiko

    class AcceptNew(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            with _known_hosts_lock:
                client.get_host_keys().add(hostname, key.get_name(), key)
                known_hosts.parent.mkdir(parents=True, exist_ok=True)
                entry = paramiko.hostkeys.HostKeyEntry([hostname], key)
                with open(known_hosts, "a") as fh:
                    fh.write(entry.to_line())
                known_hosts.chmod(0o600)

    return AcceptNew()


def _split_target(target: str, default_user: str, default_port: int) -> tuple[str, str, int]:
    user, _, hostport = target.rpartition("@")
    host, port = hostport, default_port
    if hostport.count(":") == 1:
        host, p = hostport.split(":")
        port = int(p)
    return user or default_user, host, port


def connect(host: str, settings: ClusterSettings, *, gateway: Any = None, user: str | None = None,
            port: int | None = None):
    """A Fabric Connection to `host` (not yet opened) with the project's host-key policy and key auth."""
    import paramiko
    from fabric import Config, Connection

    connect_kwargs: dict[str, Any] = {"banner_timeout": settings.connect_timeout_s,
                                      "auth_timeout": settings.connect_timeout_s}
    if settings.identity_file:
        key = Path(settings.identity_file).expanduser()
        if not key.is_file():
            raise OpsError(f"the SSH key {key} does not exist.",
                           fix=f"pass --identity PATH (or set {ENV['identity_file']}) to the stack's private key.",
                           code=2)
        connect_kwargs.update(key_filename=str(key), look_for_keys=False, allow_agent=False)
    config = Config(overrides={"load_ssh_configs": False, "run": {"hide": True, "warn": True}})
    conn = Connection(host, user=user or settings.user, port=port or settings.ssh_port, config=config,
                      connect_timeout=int(settings.connect_timeout_s), connect_kwargs=connect_kwargs,
                      gateway=gateway)
    known = Path(settings.known_hosts).expanduser()
    if known.is_file():
        conn.client.load_host_keys(str(known))
    if settings.accept_new_host_keys:
        conn.client.set_missing_host_key_policy(_accept_new_policy(known))
    else:
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return conn


def gateway_for(settings: ClusterSettings, hosts) -> Any:
    """What sits between us and the head: nothing, a bastion Connection, or an SSM proxy command."""
    if settings.via == "bastion":
        user, host, port = _split_target(settings.bastion or "", settings.user, settings.ssh_port)
        return connect(host, settings, user=user, port=port)
    if settings.via == "ssm":
        if not hosts.head_instance_id:
            raise OpsError("SSM needs the head's instance id, and the stack outputs do not export it.",
                           fix="export head_instance_id from the stack, or use --via ssh / --via bastion.", code=2)
        argv = ["aws", "ssm", "start-session", "--target", hosts.head_instance_id,
                "--document-name", "AWS-StartSSHSession", "--parameters", f"portNumber={settings.ssh_port}"]
        if hosts.region:
            argv += ["--region", hosts.region]
        return shlex.join(argv)  # Fabric runs a string gateway as a ProxyCommand
    return None


@dataclass
class Nodes:
    """Open connections to the head and the workers. Workers without their own route go through the head."""

    head: Any
    workers: dict[str, Any]
    settings: ClusterSettings

    @property
    def all(self) -> dict[str, Any]:
        return {self.head.host: self.head, **self.workers}

    def close(self) -> None:
        for c in self.all.values():
            try:
                c.close()
            except Exception:
                pass


def open_nodes(hosts, settings: ClusterSettings, *, workers: bool = True) -> Nodes:
    """Connections (opened lazily by Fabric) to the head and, optionally, every worker.

    Workers are reached the way the head is: through the bastion, or — when the head has a separate public
    address or is reached over SSM — through the head itself, since workers have private addresses only.
    """
    gw = gateway_for(settings, hosts)
    head = connect(hosts.head, settings, gateway=gw)
    conns = {}
    if workers:
        for w in hosts.workers:
            if settings.via == "bastion":
                wgw = gateway_for(settings, hosts)
            elif settings.via == "ssm" or hosts.head != hosts.head_private:
                wgw = connect(hosts.head, settings, gateway=gw)
            else:
                wgw = None
            conns[w] = connect(w, settings, gateway=wgw)
    return Nodes(head=head, workers=conns, settings=settings)


# ------------------------------------------------------------------------------------ running commands

def _connection_errors() -> tuple[type[BaseException], ...]:
    import socket

    import paramiko
    from paramiko.ssh_exception import NoValidConnectionsError

    return (paramiko.SSHException, NoValidConnectionsError, socket.error, EOFError, TimeoutError)


def _unreachable(conn, exc: BaseException, attempts: int) -> OpsError:
    import paramiko

    where = f"{conn.user}@{conn.host}:{conn.port}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return OpsError(f"the host key of {where} changed: {exc}. The connection was refused.",
                        fix="if the host was rebuilt, remove its old entry (`ssh-keygen -R HOST -f KNOWN_HOSTS`) "
                            "and re-run; otherwise investigate before connecting.", runbook=RUNBOOK, code=4)
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        known = conn.client._host_keys_filename or "known_hosts"
        return OpsError(f"{where} presented a host key that is not in {known} (strict host-key checking).",
                        fix="verify the key out of band and add it to known_hosts, or accept it on first contact "
                            f"with --accept-new-host-keys ({ENV['accept_new_host_keys']}=1).",
                        runbook=RUNBOOK, code=4)
    if isinstance(exc, paramiko.AuthenticationException):
        return OpsError(f"{where} refused our key: {exc}.",
                        fix=f"pass the stack's private key with --identity PATH ({ENV['identity_file']}) and the "
                            f"right user ({ENV['user']}).", runbook=RUNBOOK, code=4)
    return OpsError(f"lost the SSH connection to {where} after {attempts} attempt(s): {type(exc).__name__}: {exc}.",
                    fix="check that the node is up and sshd reachable (security group, bastion, SSM), then re-run "
                        "the same command: every step resumes where it stopped.", runbook=RUNBOOK, code=4)


def with_retries(conn, settings: ClusterSettings, fn: Callable[[Any], Any]) -> Any:
    """Call fn(conn), reopening the connection after connection-level failures, with exponential backoff."""
    import paramiko

    errors = _connection_errors()
    delay = settings.backoff_s
    last: BaseException | None = None
    for attempt in range(1, settings.retries + 2):
        try:
            return fn(conn)
        except (paramiko.BadHostKeyException, paramiko.AuthenticationException) as e:
            raise _unreachable(conn, e, attempt) from e
        except errors as e:
            if isinstance(e, paramiko.SSHException) and "not found in known_hosts" in str(e):
                raise _unreachable(conn, e, attempt) from e
            last = e
            try:
                conn.close()
            except Exception:
                pass
            if attempt <= settings.retries:
                time.sleep(delay)
                delay *= 2
    assert last is not None
    raise _unreachable(conn, last, settings.retries + 1) from last


def command(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """One shell-safe command line from an argument list (plus `env K=V` for the variables)."""
    prefix = ["env", *[f"{k}={v}" for k, v in sorted((env or {}).items())]] if env else []
    return shlex.join([*prefix, *[str(a) for a in argv]])


def run(conn, settings: ClusterSettings, argv: Sequence[str], *, env: dict[str, str] | None = None,
        timeout: float | None = None, check: bool = True, what: str | None = None):
    """Run argv on the node; returns Fabric's Result. A non-zero exit raises OpsError when check is set."""
    from invoke.exceptions import CommandTimedOut

    line = command(argv, env)
    t = timeout or settings.command_timeout_s
    try:
        result = with_retries(conn, settings, lambda c: c.run(line, hide=True, warn=True, timeout=t, in_stream=False))
    except CommandTimedOut as e:
        raise OpsError(f"{what or argv[0]} on {conn.host} did not finish within {t:.0f}s.",
                       fix="look at the node (`ops logs --target cluster`) and re-run; raise the limit with "
                           f"{ENV['command_timeout_s']}.", runbook=RUNBOOK) from e
    if check and result.exited != 0:
        tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-8:])
        raise OpsError(f"{what or shlex.join(list(argv)[:3])} failed on {conn.host} (exit {result.exited}):\n{tail}",
                       fix="read the output above; fix the node and re-run the same command (it resumes).",
                       runbook=RUNBOOK)
    return result


def fanout(conns: dict[str, Any], settings: ClusterSettings, argv_for: Callable[[str], Sequence[str]] | Sequence[str],
           *, env: dict[str, str] | None = None, timeout: float | None = None, what: str | None = None,
           check: bool = True) -> dict[str, Any]:
    """Run a command on many nodes at once (Fabric ThreadingGroup); hosts whose connection failed are retried
    one by one with backoff. argv_for may be one argument list or a function of the host."""
    from fabric import ThreadingGroup
    from fabric.exceptions import GroupException

    if not conns:
        return {}
    per_host = {h: list(argv_for(h) if callable(argv_for) else argv_for) for h in conns}
    results: dict[str, Any] = {}
    first = next(iter(per_host.values()))
    if all(a == first for a in per_host.values()):
        group = ThreadingGroup.from_connections(list(conns.values()))
        t = timeout or settings.command_timeout_s
        try:
            group_result = group.run(command(first, env), hide=True, warn=True, timeout=t, in_stream=False)
        except GroupException as e:
            group_result = e.result
        for c, r in group_result.items():
            if isinstance(r, BaseException):
                continue  # retried below
            results[c.host] = r
    rest = [h for h in per_host if h not in results]
    if rest:
        # Commands that differ per host, and hosts whose group connection failed: one thread each, with retries.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(rest)) as pool:
            futures = {h: pool.submit(run, conns[h], settings, per_host[h], env=env, timeout=timeout, check=False,
                                      what=what) for h in rest}
            for h, f in futures.items():
                results[h] = f.result()
    if check:
        for host, r in results.items():
            if r.exited != 0:
                tail = "\n".join((r.stderr or r.stdout or "").strip().splitlines()[-8:])
                raise OpsError(f"{what or per_host[host][0]} failed on {host} (exit {r.exited}):\n{tail}",
                               fix="read the output above; fix the node and re-run the same command (it resumes).",
                               runbook=RUNBOOK)
    return results
