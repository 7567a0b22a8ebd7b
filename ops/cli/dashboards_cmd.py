"""`ops dashboards` (Prometheus + Grafana for the Serve LLM metrics) and `ops metrics` (a terminal summary).

The work lives in ops/dashboards/; this module only parses options and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ops.cli.options import Json, Preset, Sets, SpecFile, TargetOpt, resolve_options

PromPort = Annotated[int, typer.Option("--prometheus-port", help="Prometheus port (loopback).")]
GrafPort = Annotated[int, typer.Option("--grafana-port", help="Grafana port (loopback).")]


def register(app: typer.Typer) -> None:
    from ops.dashboards import GRAFANA_PORT, PROMETHEUS_PORT, RAY_TEMP_DIR

    @app.command("dashboards", rich_help_panel="Operate")
    def dashboards(preset: Preset = None, file: SpecFile = None, target: TargetOpt = None, sets: Sets = None,
                   stop: Annotated[bool, typer.Option("--stop", help="Stop Prometheus and Grafana.")] = False,
                   check: Annotated[bool, typer.Option("--check", help="Then verify every panel and alert query "
                                                       "returns data (needs recent traffic).")] = False,
                   prometheus_port: PromPort = PROMETHEUS_PORT, grafana_port: GrafPort = GRAFANA_PORT,
                   scrape_interval: Annotated[str, typer.Option(help="Prometheus scrape interval.")] = "10s",
                   ray_temp_dir: Annotated[str, typer.Option(help="Ray's --temp-dir (discovery file, Ray's "
                                                             "dashboards).")] = RAY_TEMP_DIR,
                   with_grafana: Annotated[bool, typer.Option("--grafana/--no-grafana", help="Cluster: also "
                                                              "install and run Grafana on the head.")] = True,
                   directory: Annotated[Optional[Path], typer.Option("--dir", help="Where the local files go "
                                                                     "(default ~/.cache/gpt-oss-ops/dashboards).")] = None,
                   json_: Json = False) -> None:
        """Bring up Prometheus and Grafana for the Serve LLM metrics: scrape config from Ray's service
        discovery, alert rules from the spec, Ray's Serve / Serve LLM dashboards and a compact gpt-oss one.

        Examples:\n
          ops dashboards                      # local: Prometheus (and Grafana if installed) on 127.0.0.1\n
          ops dashboards --check              # ... and prove every panel query returns data\n
          ops dashboards --target cluster     # on the head node; prints the SSH tunnel line\n
          ops dashboards --stop
        """
        from ops.console import emit_json, err

        spec = resolve_options(preset, file, None, None, None, None, target, sets).spec
        if spec.target.value == "cluster":
            result = _cluster(spec, stop=stop, prometheus_port=prometheus_port, grafana_port=grafana_port,
                              scrape_interval=scrape_interval, with_grafana=with_grafana)
            if json_:
                emit_json(result)
            else:
                for line in result.get("changed", []) + result.get("stopped", []):
                    err.print(f"[green]{line}[/]")
                if result.get("tunnel"):
                    err.print("Open the dashboards through the tunnel:")
                    err.print(f"  {result['tunnel']}", markup=False)
                    err.print((f"  then http://127.0.0.1:{grafana_port} (Grafana), " if with_grafana else "  then ")
                              + f"http://127.0.0.1:{prometheus_port} (Prometheus)")
            return
        if spec.target.value != "local":
            from ops.errors import OpsError

            raise OpsError(f"`ops dashboards` runs for the local and cluster targets, not {spec.target.value}.",
                           fix="Anyscale services come with their own metrics dashboards in the Anyscale console.",
                           code=2)
        from ops.dashboards import local

        if stop:
            res = local.down(directory)
            if json_:
                emit_json(res)
            else:
                for s in res["stopped"]:
                    err.print(f"[green]stopped[/] {s}")
                for s in res["already_stopped"]:
                    err.print(f"[dim]not running[/] {s}")
            return
        up = local.up(spec, root=directory, temp_dir=ray_temp_dir, prometheus_port=prometheus_port,
                      grafana_port=grafana_port, scrape_interval=scrape_interval)
        out = up.to_dict()
        if check:
            out["check"] = _check(up.prometheus_url, spec, json_)
        if json_:
            emit_json(out)
        else:
            for line in up.changed:
                err.print(f"[green]{line}[/]")
            for line in up.unchanged:
                err.print(f"[dim]{line}[/]")
            err.print(f"Ray dashboards provisioned: {', '.join(up.ray_dashboards) or 'none'}")
            err.print(f"files: {up.root}")
            for n in up.notes:
                err.print(f"[yellow]note:[/] {n}", markup=True)
        if check and not all(r["ok"] for r in out["check"]):
            raise typer.Exit(1)

    @app.command("metrics", rich_help_panel="Operate")
    def metrics(prometheus: Annotated[Optional[str], typer.Option(help="Prometheus URL (default: the one "
                                                                 "`ops dashboards` runs, or the tunnel).")] = None,
                window: Annotated[str, typer.Option(help="Rate / quantile window.")] = "5m",
                json_: Json = False) -> None:
        """Terminal summary read from Prometheus: TTFT p50/p95, TPOT, tokens/s in and out, KV cache usage,
        running and waiting requests."""
        from ops.console import emit_json, err
        from ops.dashboards import metrics as m
        from ops.dashboards import prometheus as p

        data = m.summary(prometheus or p.url(PROMETHEUS_PORT), window=window)
        if json_:
            emit_json(data)
            return
        from rich.table import Table

        table = Table(title=f"gpt-oss service, last {window} ({data['prometheus']})", show_header=False)
        for key, (label, unit) in m.LABELS.items():
            v = data[key]
            table.add_row(label, "no data" if v is None else f"{v:,.2f}{(' ' + unit) if unit else ''}")
        err.print(table)


def _check(prom_url: str, spec, quiet: bool) -> list[dict]:
    from ops.console import err
    from ops.dashboards import check

    results = check.check_settled(prom_url, check.shipped_queries(spec))
    if not quiet:
        for r in results:
            mark = "[green]ok[/]" if r.ok else "[red]NO DATA[/]"
            err.print(f"{mark} {r.name}" + (f" ({r.error})" if r.error else ""))
    return [r.to_dict() for r in results]


def _cluster(spec, *, stop: bool, **opts) -> dict:
    """Install on / stop on the head of the cluster the cluster target manages."""
    from ops.dashboards import remote
    from ops.remote import connection, hosts, settings

    s = settings.load()
    h = hosts.resolve(s)
    nodes = connection.open_nodes(h, s, workers=False)
    try:
        if stop:
            return remote.uninstall(nodes.head)
        return remote.install(nodes.head, spec, temp_dir=s.ray_temp_dir_for(h.head) or remote.RAY_TEMP_DIR,
                              **opts)
    finally:
        nodes.close()
