"""The ``libmesh`` command: ``validate`` config and ``explain`` the routing decision for one request.

``libmesh validate PATH...`` exits 0 when the config is valid, 1 when it is not and 2 on a usage error.
``libmesh explain --config PATH URL`` prints what the mesh would do with one request; ``--json`` prints one
JSON object for scripts (keys documented in docs/cli.md). ``libmesh status URL`` reads a running workload's
status endpoint: the config version it serves, where from, the last error, its clusters.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .config.loader import parse_paths
from .errors import ConfigIssue

__all__ = ["explain_json", "main", "status_text"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="libmesh", description="An in-process service mesh configured with Istio YAML.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    v = sub.add_parser("validate", help="validate Istio YAML files or directories")
    v.add_argument("paths", nargs="+", metavar="PATH")
    v.add_argument("--strict", action="store_true", help="treat warnings as errors")
    v.add_argument("--namespace", "-n", default="default", help="namespace of resources that name none")
    v.add_argument("--quiet", "-q", action="store_true", help="print only errors")

    e = sub.add_parser("explain", help="explain the routing decision for one request")
    e.add_argument("--config", "-c", action="append", required=True, metavar="PATH")
    e.add_argument("--namespace", "-n", default="default", help="namespace of the calling workload")
    e.add_argument("--source-labels", default="", metavar="k=v,k=v", help="labels of the calling workload")
    e.add_argument("-X", "--request", dest="method", default="GET", metavar="METHOD")
    e.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="'Name: value'")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("url", metavar="URL")

    st = sub.add_parser("status", help="show what a running workload's mesh serves (its status endpoint)")
    st.add_argument(
        "url", metavar="URL", help="the status endpoint, e.g. http://127.0.0.1:9080/libmesh/status"
    )
    st.add_argument("--json", action="store_true", help="print the endpoint's JSON as is")
    st.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``libmesh`` console script; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "validate":
        return _validate(args)
    if args.command == "status":
        return _status(args)
    return _explain(args, parser)


def _status(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    url = args.url if "://" in args.url else f"http://{args.url}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"libmesh status: cannot read {url}: {e}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(status_text(status))
    return EXIT_OK


def status_text(status: dict[str, Any]) -> str:
    """The human-readable form ``libmesh status`` prints for a status endpoint's JSON."""
    import time

    wl = status.get("workload", {})
    cfg = status.get("config", {})
    lines = [
        f"workload: {wl.get('name')}.{wl.get('namespace')}",
        f"config version: {cfg.get('version')}",
        f"source: {cfg.get('source')}",
    ]
    applied = cfg.get("last_applied")
    if applied:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(applied))
        lines.append(f"last applied: {stamp} ({time.time() - applied:.1f}s ago)")
    reloads = cfg.get("reloads", {})
    lines.append(f"reloads: {reloads.get('applied', 0)} applied, {reloads.get('rejected', 0)} rejected")
    lines.append(f"last error: {cfg.get('last_error') or '-'}")
    clusters = status.get("clusters", {})
    lines.append(f"clusters: {len(clusters)}")
    for name, c in clusters.items():
        ejected = c.get("ejected") or []
        extra = f", ejected: {', '.join(ejected)}" if ejected else ""
        lines.append(f"  {name}: {len(c.get('endpoints', []))} endpoints, {c.get('healthy')} healthy{extra}")
    registry = status.get("registry")
    if registry:
        lines.append(f"registry: {json.dumps(registry, sort_keys=True)}")
    return "\n".join(lines)


def _validate(args: argparse.Namespace) -> int:
    from .config.analysis import analyze

    config = parse_paths(args.paths, namespace=args.namespace)
    issues = list(config.issues)
    if not config.errors:
        issues.extend(analyze(config, namespace=args.namespace))
    errors = [i for i in issues if i.is_error or args.strict]
    for issue in issues:
        if args.quiet and not (issue.is_error or args.strict):
            continue
        print(_format_issue(issue, args.strict), file=sys.stderr if issue in errors else sys.stdout)
    n_docs = len(config.documents)
    n_warn = len(issues) - len(errors)
    summary = f"{n_docs} resources, {len(errors)} errors, {n_warn} warnings"
    print(("invalid: " if errors else "valid: ") + summary, file=sys.stderr if errors else sys.stdout)
    return EXIT_INVALID if errors else EXIT_OK


def _format_issue(issue: ConfigIssue, strict: bool) -> str:
    text = str(issue)
    if strict and text.startswith("warning: "):
        return "error: " + text[len("warning: ") :]
    return text


def _explain(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .routing.call import Call
    from .routing.snapshot import Snapshot
    from .workload import Workload

    headers: dict[str, str] = {}
    for raw in args.headers:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            parser.error(f"header {raw!r} is not of the form 'Name: value'")
        key = name.strip().lower()
        headers[key] = f"{headers[key]},{value.strip()}" if key in headers else value.strip()
    labels: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in args.source_labels.split(","))):
        k, sep, v = pair.partition("=")
        if not sep or not k:
            parser.error(f"source label {pair!r} is not of the form key=value")
        labels[k] = v
    url = args.url if "://" in args.url else f"http://{args.url}"
    parts = urlsplit(url)
    if not parts.netloc:
        parser.error(f"URL {args.url!r} has no host")

    config = parse_paths(args.config, namespace=args.namespace)
    if config.errors:
        for issue in config.errors:
            print(issue, file=sys.stderr)
        return EXIT_INVALID
    workload = Workload(name="explain", namespace=args.namespace, labels=labels)
    snapshot = Snapshot.compile(config, workload=workload, namespace=args.namespace)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    call = Call(
        authority=parts.netloc,
        path=path,
        method=args.method.upper(),
        scheme=parts.scheme,
        headers=headers,
    )
    result = explain_json(snapshot, call)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_explain_text(result))
    return EXIT_OK


def explain_json(snapshot: Any, call: Any) -> dict[str, Any]:
    """The decision for ``call`` as the JSON object ``libmesh explain --json`` prints."""
    d = snapshot.route(call)
    ms = _ms
    out: dict[str, Any] = {
        "host": d.host,
        "port": call.target_port,
        "virtual_service": d.virtual_service,
        "route_index": d.route_index,
        "match_index": d.match_index,
        "route_name": d.route_name,
        "action": d.action.value,
        "destinations": [
            {
                "host": x.host,
                "subset": x.subset,
                "port": x.port,
                "weight": _num(x.weight),
                "labels": dict(x.labels) if x.labels is not None else None,
                "destination_rule": x.destination_rule,
            }
            for x in d.destinations
        ],
        "timeout_ms": ms(d.timeout),
        "retries": None,
        "fault": None,
        "redirect": None,
        "direct_response": None,
        "rewrite": None,
        "mirrors": [
            {"host": m.host, "subset": m.subset, "port": m.port, "percent": _num(m.percent)}
            for m in d.mirrors
        ],
        "request_headers": _ops(d.request_headers),
        "response_headers": _ops(d.response_headers),
    }
    if d.retries is not None:
        out["retries"] = {
            "attempts": d.retries.attempts,
            "per_try_timeout_ms": ms(d.retries.per_try_timeout),
            "retry_on": list(d.retries.retry_on) + [str(c) for c in sorted(d.retries.retriable_status_codes)],
        }
    elif d.action.value == "route":
        out["retries"] = {"attempts": 0, "per_try_timeout_ms": None, "retry_on": []}
    if d.fault is not None:
        f = d.fault
        out["fault"] = {
            "delay_ms": ms(f.delay),
            "delay_percent": _num(f.delay_percent) if f.delay is not None else None,
            "abort_http_status": f.abort_http_status,
            "abort_grpc_status": f.abort_grpc_status,
            "abort_percent": _num(f.abort_percent)
            if f.abort_http_status is not None or f.abort_grpc_status is not None
            else None,
        }
    if d.redirect is not None:
        r = d.redirect
        out["redirect"] = {
            "uri": r.uri,
            "authority": r.authority,
            "status": r.status,
            "location": r.location(call.scheme, call.host, call.target_port, call.path),
        }
    if d.direct_response is not None:
        body = d.direct_response.body
        out["direct_response"] = {
            "status": d.direct_response.status,
            "body": body.decode("utf-8", "replace") if body is not None else None,
        }
    if d.rewrite is not None:
        rw = d.rewrite
        out["rewrite"] = {
            "uri": rw.uri,
            "authority": rw.authority,
            "uri_regex": rw.regex.pattern if rw.regex is not None else None,
            "path": rw.apply_path(call.path),
        }
    return out


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _ops(ops: Any) -> dict[str, Any] | None:
    if not ops:
        return None
    return {"set": dict(ops.set), "add": dict(ops.add), "remove": list(ops.remove)}


def _explain_text(r: dict[str, Any]) -> str:
    lines = [f"host:            {r['host']}:{r['port']}"]
    vs = r["virtual_service"] or "(none: default route)"
    where = ""
    if r["route_index"] is not None:
        where = f"  spec.http[{r['route_index']}]"
        if r["match_index"] is not None:
            where += f".match[{r['match_index']}]"
    lines.append(f"virtual service: {vs}{where}")
    lines.append(f"action:          {r['action']}")
    for d in r["destinations"]:
        target = d["host"] + (f":{d['port']}" if d["port"] else "")
        subset = f" subset={d['subset']}" if d["subset"] else ""
        lines.append(f"  -> {target}{subset}  {d['weight']}%")
    if r["redirect"]:
        lines.append(f"redirect:        {r['redirect']['status']} {r['redirect']['location']}")
    if r["direct_response"]:
        dr = r["direct_response"]
        lines.append(f"direct response: {dr['status']} {dr['body'] or ''}".rstrip())
    if r["rewrite"]:
        lines.append(f"rewrite:         path={r['rewrite']['path']} authority={r['rewrite']['authority']}")
    if r["timeout_ms"] is not None:
        lines.append(f"timeout:         {r['timeout_ms']} ms")
    if r["retries"]:
        rt = r["retries"]
        per_try = f", per try {rt['per_try_timeout_ms']} ms" if rt["per_try_timeout_ms"] else ""
        lines.append(f"retries:         {rt['attempts']} on {','.join(rt['retry_on']) or '-'}{per_try}")
    if r["fault"]:
        lines.append(f"fault:           {json.dumps(r['fault'])}")
    for m in r["mirrors"]:
        lines.append(f"mirror:          {m['host']} subset={m['subset']} {m['percent']}%")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
