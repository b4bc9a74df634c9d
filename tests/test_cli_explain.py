"""`libmesh explain`: Istio's answers for the Bookinfo samples, and the --json contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libmesh.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "bookinfo_py" / "networking"


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["explain", "--json", *args]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def shares(result: dict[str, object]) -> dict[str | None, float]:
    dests = result["destinations"]
    assert isinstance(dests, list)
    return {d["subset"]: d["weight"] for d in dests}


def test_reviews_test_v2_sends_jason_to_v2_and_others_to_v1(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = corpus / "bookinfo-networking"
    cfg = ["--config", str(samples / "virtual-service-reviews-test-v2.yaml")]
    cfg += ["--config", str(samples / "destination-rule-all.yaml")]
    jason = explain(capsys, *cfg, "-H", "end-user: jason", "http://reviews:9080/reviews/0")
    assert jason["host"] == "reviews.default.svc.cluster.local"
    assert jason["virtual_service"] == "default/reviews"
    assert jason["action"] == "route" and jason["route_index"] == 0
    assert shares(jason) == {"v2": 100}
    other = explain(capsys, *cfg, "-H", "end-user: bob", "http://reviews:9080/reviews/0")
    assert other["route_index"] == 1 and shares(other) == {"v1": 100}
    anonymous = explain(capsys, *cfg, "http://reviews:9080/reviews/0")
    assert shares(anonymous) == {"v1": 100}


def test_reviews_50_v3_splits_half_and_half(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = corpus / "bookinfo-networking"
    result = explain(
        capsys,
        "--config",
        str(samples / "virtual-service-reviews-50-v3.yaml"),
        "http://reviews:9080/",
    )
    assert shares(result) == {"v1": 50, "v3": 50}


def test_json_contract_keys_and_types(capsys: pytest.CaptureFixture[str]) -> None:
    result = explain(
        capsys,
        "--config",
        str(EXAMPLES / "ratings-delay-jason.yaml"),
        "-X",
        "POST",
        "-H",
        "end-user: jason",
        "http://ratings:9080/ratings/0",
    )
    for key in (
        "host",
        "virtual_service",
        "route_index",
        "action",
        "destinations",
        "timeout_ms",
        "retries",
        "fault",
        "redirect",
        "direct_response",
        "rewrite",
        "mirrors",
    ):
        assert key in result
    assert result["fault"] == {
        "delay_ms": 7000,
        "delay_percent": 100,
        "abort_http_status": None,
        "abort_grpc_status": None,
        "abort_percent": None,
    }
    assert result["retries"] == {
        "attempts": 2,
        "per_try_timeout_ms": None,
        "retry_on": [
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes",
        ],
    }
    assert result["timeout_ms"] is None and result["redirect"] is None and result["mirrors"] == []
    dest = result["destinations"]
    assert isinstance(dest, list)
    assert dest[0] == {
        "host": "ratings.default.svc.cluster.local",
        "subset": "v1",
        "port": None,
        "weight": 100,
        "labels": None,
        "destination_rule": None,
    }


def test_no_virtual_service_gives_default_route(capsys: pytest.CaptureFixture[str]) -> None:
    result = explain(
        capsys, "--config", str(EXAMPLES / "destination-rules.yaml"), "http://details:9080/details/0"
    )
    assert result["virtual_service"] is None and result["route_index"] is None
    assert result["action"] == "route"
    assert shares(result) == {None: 100}


def test_no_matching_route_is_no_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "vs.yaml"
    cfg.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
        "spec:\n  hosts: [reviews]\n  http:\n  - match: [{uri: {exact: /only}}]\n"
        "    route: [{destination: {host: reviews}}]\n"
    )
    result = explain(capsys, "--config", str(cfg), "http://reviews/other")
    assert result["action"] == "no_route" and result["destinations"] == []
    assert result["virtual_service"] == "default/r"


def test_redirect_direct_response_rewrite_mirrors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "vs.yaml"
    cfg.write_text(
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: example.com, redirectCode: 308}
  - match: [{uri: {exact: /health}}]
    directResponse: {status: 200, body: {string: ok}}
  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /, authority: backend}
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 'gateway-error,503'}
    mirrors:
    - destination: {host: shadow}
      percentage: {value: 10}
    route: [{destination: {host: web, port: {number: 8080}}}]
"""
    )
    common = ["--config", str(cfg), "--namespace", "shop"]
    r = explain(capsys, *common, "http://web/old/page")
    assert r["action"] == "redirect"
    assert r["redirect"] == {
        "uri": "/new",
        "authority": "example.com",
        "status": 308,
        "location": "http://example.com/new",
    }
    r = explain(capsys, *common, "http://web/health")
    assert r["action"] == "direct_response" and r["direct_response"] == {"status": 200, "body": "ok"}
    r = explain(capsys, *common, "http://web/api/items?x=1")
    assert r["timeout_ms"] == 2000
    assert r["retries"] == {
        "attempts": 3,
        "per_try_timeout_ms": 500,
        "retry_on": ["gateway-error", "retriable-status-codes", "503"],
    }
    rewrite = r["rewrite"]
    assert isinstance(rewrite, dict)
    assert (rewrite["uri"], rewrite["authority"], rewrite["path"]) == ("/", "backend", "/items?x=1")
    assert r["mirrors"] == [
        {"host": "shadow.shop.svc.cluster.local", "subset": None, "port": None, "percent": 10}
    ]
    dest = r["destinations"]
    assert isinstance(dest, list) and dest[0]["port"] == 8080


def test_source_labels_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "vs.yaml"
    cfg.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
        "spec:\n  hosts: [reviews]\n  http:\n  - match: [{sourceLabels: {app: productpage}}]\n"
        "    route: [{destination: {host: reviews, subset: v2}}]\n"
        "  - route: [{destination: {host: reviews, subset: v1}}]\n"
    )
    r = explain(
        capsys, "--config", str(cfg), "--source-labels", "app=productpage,version=v1", "http://reviews/"
    )
    assert shares(r) == {"v2": 100}
    assert shares(explain(capsys, "--config", str(cfg), "http://reviews/")) == {"v1": 100}


def test_text_output_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["explain", "--config", str(EXAMPLES / "jason-v2.yaml"), "-H", "end-user: jason", "reviews"])
        == 0
    )
    out = capsys.readouterr().out
    assert "default/reviews" in out and "subset=v2" in out
    with pytest.raises(SystemExit) as e:
        main(["explain", "--config", str(EXAMPLES), "-H", "no-colon", "http://reviews/"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["explain", "http://reviews/"])  # --config is required
    assert e.value.code == 2


def test_invalid_config_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {retires: 1}\n"
    )
    assert main(["explain", "--config", str(bad), "http://reviews/"]) == 1
    assert "bad.yaml:4" in capsys.readouterr().err
