"""``make demo``: validate Istio's Bookinfo samples and explain a few requests with ``libmesh explain``.

Until the Bookinfo services land (see the Bookinfo issue), the demo shows the config plane: the same YAML an
Istio user applies, validated and compiled, and the routing decisions it makes for real-looking requests.
``python -m examples.demo [--once]`` (``--once`` is accepted for scripts; this demo always exits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from libmesh.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "istio-corpus" / "bookinfo-networking"
OWN = ROOT / "examples" / "bookinfo_py" / "networking"


def _explain(title: str, files: list[str], url: str, *headers: str) -> None:
    args = ["explain", "--json"]
    for f in files:
        args += ["--config", str(OWN / f)]
    for h in headers:
        args += ["-H", h]
    args.append(url)
    print(f"\n== {title}")
    shown = " ".join(f"--config {f}" for f in files) + "".join(f" -H '{h}'" for h in headers)
    print(f"   libmesh explain {shown} {url}")
    from contextlib import redirect_stdout
    from io import StringIO

    buf = StringIO()
    with redirect_stdout(buf):
        cli(args)
    result = json.loads(buf.getvalue())
    dests = (
        ", ".join(f"{d['subset'] or d['host']} {d['weight']}%" for d in result["destinations"])
        or result["action"]
    )
    where = result["virtual_service"] or "default route"
    print(f"   -> {dests}   ({where}, retries {result['retries']['attempts'] if result['retries'] else 0})")
    if result["fault"]:
        print(f"   fault: {result['fault']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="run the tour and exit (the default for now)")
    parser.parse_args(argv)
    for base in (SAMPLES, OWN):
        if not base.is_dir():
            print(f"== (skipping {base}: not present)")
            continue
        print(f"== libmesh validate --quiet {base}")
        code = cli(["validate", "--quiet", str(base)])
        if code != 0:
            return code
    dr = "destination-rules.yaml"
    url = "http://reviews:9080/reviews/0"
    _explain("All traffic to reviews v1", ["route-all-v1.yaml", dr], url)
    _explain("jason -> reviews v2", ["jason-v2.yaml", dr], url, "end-user: jason")
    _explain("everyone else -> reviews v1", ["jason-v2.yaml", dr], url)
    _explain("50/50 reviews v1/v3", ["reviews-50-v3.yaml", dr], url)
    ratings = "http://ratings:9080/ratings/0"
    _explain("7 s delay on ratings for jason", ["ratings-delay-jason.yaml", dr], ratings, "end-user: jason")
    _explain("abort on ratings for jason", ["ratings-abort-jason.yaml", dr], ratings, "end-user: jason")
    print("\nNext: `make test` runs every test; docs/ explains the design and what of Istio is supported.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
