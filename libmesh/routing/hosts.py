"""Host names as Istio reads them: short names, FQDNs and wildcards."""

from __future__ import annotations

import ipaddress

__all__ = [
    "call_host_candidates",
    "host_matches",
    "is_wildcard",
    "resolve_config_host",
    "wildcard_specificity",
]


def resolve_config_host(host: str, namespace: str, domain: str = "cluster.local") -> str:
    """Resolve a host written in a resource, as Istio does: a name without a dot is short and expands in the
    resource's namespace (``reviews`` -> ``reviews.default.svc.cluster.local``); anything with a dot, ``*``
    and IP addresses are taken as written.

    >>> resolve_config_host("reviews", "prod")
    'reviews.prod.svc.cluster.local'
    >>> resolve_config_host("reviews.prod", "default")
    'reviews.prod'
    """
    h = host.strip().lower()
    if not h or h == "*" or "." in h or _is_ip(h):
        return h
    return f"{h}.{namespace}.svc.{domain}"


def call_host_candidates(host: str, namespace: str, domain: str = "cluster.local") -> tuple[str, ...]:
    """The FQDNs a caller in ``namespace`` may mean by ``host``, most likely first, following Kubernetes' DNS
    search path (``reviews``, ``reviews.prod``, ``reviews.prod.svc``) and then the name itself.

    >>> call_host_candidates("reviews.prod", "default")
    ('reviews.prod.svc.cluster.local', 'reviews.prod')
    """
    h = host.lower().rstrip(".")
    if _is_ip(h):
        return (h,)
    suffix = f".svc.{domain}"
    if "." not in h:
        return (f"{h}.{namespace}{suffix}",)
    if h.endswith(".svc"):
        return (f"{h}.{domain}", h)
    if h.count(".") == 1:
        return (f"{h}{suffix}", h)
    return (h,)


def is_wildcard(host: str) -> bool:
    """True for ``*`` and ``*.suffix`` hosts."""
    return host.startswith("*")


def host_matches(pattern: str, host: str) -> bool:
    """Whether a config host (possibly a wildcard) covers a concrete host. ``*.foo.com`` does not cover
    ``foo.com``; ``*`` covers everything.

    >>> host_matches("*.foo.com", "a.foo.com"), host_matches("*.foo.com", "foo.com")
    (True, False)
    """
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return pattern == host


def wildcard_specificity(pattern: str) -> int:
    """Sort key for wildcard hosts: longer suffixes are more specific."""
    return len(pattern)


_IP_CHARS = frozenset("0123456789abcdefABCDEF:.[]%")


def _is_ip(host: str) -> bool:
    if not _IP_CHARS.issuperset(host):
        return False  # a letter beyond hex: a name (and much cheaper than ipaddress's parsers)
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
