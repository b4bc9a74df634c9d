"""Building blocks shared by the rule modules: Istio's checks on names, hosts, ports, durations, headers.

Two kinds of helper live here:

* pure predicates and ``*_error`` functions that return Istio's complaint (or ``None``), for rules that need
  to combine or reword a check (``is_dns1123_label("reviews")``, ``wildcard_domain_error("*.example.com")``);
* ``validate_*(r, path, value, ...)`` functions that report into a :class:`Reporter` at ``path`` (relative to
  the reporter), for the common case::

      validate_duration(r, "spec.http[0].timeout", route.timeout)
      validate_port(r.at("spec.tcp[0].match[0]"), "port", match.port)

Every function accepts what the typed model holds (``None`` means "not set" and is never an error here; the
caller decides whether a field is required) and never raises.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ...routing.regex import MAX_REGEX_LENGTH as _REGEX_MAX
from ...routing.regex import validate_re2
from . import Reporter

__all__ = [
    "CORS_METHODS",
    "GRPC_STATUS_CODES",
    "MAX_REGEX_LENGTH",
    "PSEUDO_HEADERS",
    "RETRY_ON_POLICIES",
    "dns1123_labels_error",
    "duration_error",
    "fqdn_error",
    "header_value_error",
    "host_matches",
    "host_subset_of",
    "ip_address_error",
    "ip_subnet_error",
    "is_authority_header",
    "is_dns1123_label",
    "is_internal_header",
    "is_ip_address",
    "is_jwt_claim_route",
    "is_label_value",
    "is_wildcard_dns1123_label",
    "key_path",
    "label_key_error",
    "percentage_error",
    "port_error",
    "regex_error",
    "validate_cors_header_name",
    "validate_duration",
    "validate_export_to",
    "validate_fqdn",
    "validate_gateway_names",
    "validate_header_name",
    "validate_header_operation_name",
    "validate_header_value",
    "validate_http_retry",
    "validate_ip_address",
    "validate_ip_subnet",
    "validate_labels",
    "validate_namespace_slash_hostname",
    "validate_partial_wildcard",
    "validate_percent",
    "validate_percentage",
    "validate_port",
    "validate_probe_header_name",
    "validate_regex",
    "validate_selector_labels",
    "validate_strict_header_name",
    "validate_string_match",
    "validate_subset_name",
    "validate_trust_domain",
    "validate_unix_address",
    "validate_wildcard_domain",
    "wildcard_domain_error",
]

# --- paths -----------------------------------------------------------------------------------------------

_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def key_path(key: str) -> str:
    """The relative path of map entry ``key``, spelled as the decoder records it (``end-user`` or
    ``[x.y/z]``), so that findings land on the key's line.

    >>> key_path("end-user"), key_path("app.kubernetes.io/name")
    ('end-user', '[app.kubernetes.io/name]')
    """
    return key if _SIMPLE_KEY.fullmatch(key) else f"[{key}]"


# --- DNS names and labels --------------------------------------------------------------------------------

_DNS1123_LABEL_MAX = 63
_DNS1123_LABEL = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL)
# A wildcard first label is "*", or a label preceded by "*" or "*-" ("*foo", "*-foo").
_WILDCARD_LABEL_RE = re.compile(rf"\*|(?:\*|\*-)?{_DNS1123_LABEL}")
_ALL_NUMERIC = re.compile(r"[+-]?[0-9]+")


def is_dns1123_label(value: str) -> bool:
    """True for an RFC 1123 label (letters, digits and inner dashes, at most 63 characters).

    Istio, unlike Kubernetes, accepts upper-case letters here.

    >>> is_dns1123_label("reviews-v1"), is_dns1123_label("-bad"), is_dns1123_label("a.b")
    (True, False, False)
    """
    return len(value) <= _DNS1123_LABEL_MAX and _DNS1123_LABEL_RE.fullmatch(value) is not None


def is_wildcard_dns1123_label(value: str) -> bool:
    """True for a DNS label that may start with a wildcard: ``*``, ``*foo``, ``*-foo`` or a plain label."""
    return len(value) <= _DNS1123_LABEL_MAX and _WILDCARD_LABEL_RE.fullmatch(value) is not None


def _dns1123_preconditions_error(name: str) -> str | None:
    if len(name) > 255:
        return f'domain name "{name}" too long (max 255)'
    if not name:
        return "empty domain name not allowed"
    return None


def dns1123_labels_error(domain: str) -> str | None:
    """Why ``domain`` is not a dot-separated list of DNS labels (a trailing dot is allowed), or ``None``."""
    parts = domain.split(".")
    top = parts[-1]
    if _ALL_NUMERIC.fullmatch(top):
        return f'domain name "{domain}" invalid (top level domain "{top}" cannot be all-numeric)'
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None  # "istio.io." is an unambiguous absolute name
        if not is_dns1123_label(label):
            return f'domain name "{domain}" invalid (label "{label}" invalid)'
    return None


def fqdn_error(name: str) -> str | None:
    """Why ``name`` is not a valid DNS name (Istio's FQDN check; short names pass), or ``None``."""
    return _dns1123_preconditions_error(name) or dns1123_labels_error(name)


def wildcard_domain_error(domain: str) -> str | None:
    """Why ``domain`` is not a DNS name whose first label may be a wildcard (``*.example.com``, ``*``), or
    ``None``."""
    problem = _dns1123_preconditions_error(domain)
    if problem:
        return problem
    first, dot, rest = domain.partition(".")
    if not is_wildcard_dns1123_label(first):
        return f'domain name "{domain}" invalid (label "{first}" invalid)'
    return dns1123_labels_error(rest) if dot else None


def validate_fqdn(r: Reporter, path: str, name: str | None) -> None:
    """Report at ``path`` when ``name`` is not a valid DNS name."""
    if name is not None and (problem := fqdn_error(name)):
        r.error(path, problem)


def validate_wildcard_domain(r: Reporter, path: str, domain: str | None) -> None:
    """Report at ``path`` when ``domain`` is not a DNS name with an optional wildcard first label."""
    if domain is not None and (problem := wildcard_domain_error(domain)):
        r.error(path, problem)


def validate_partial_wildcard(r: Reporter, path: str, host: str | None) -> None:
    """Report a wildcard that is not a whole first label (``*foo.com``); ``*`` and ``*.foo.com`` are fine."""
    if host and "*" in host and host != "*" and not host.startswith("*."):
        r.error(path, f'partial wildcard "{host}" not allowed')


def validate_trust_domain(r: Reporter, path: str, domain: str | None) -> None:
    """Report a trust domain that is empty or not made of DNS labels."""
    if domain is None:
        return
    if not domain:
        r.error(path, "empty domain name not allowed")
        return
    parts = domain.split(".")
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return
        if not is_dns1123_label(label):
            r.error(path, f'trust domain name "{domain}" invalid')
            return


def host_matches(a: str, b: str) -> bool:
    """True when hostnames ``a`` and ``b`` overlap: equal, or one wildcard covers the other.

    >>> host_matches("*.com", "foo.com"), host_matches("*.foo.com", "foo.com"), host_matches("*", "*.com")
    (True, False, True)
    """
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild and b_wild:
        shorter, longer = (a, b) if len(a) < len(b) else (b, a)
        return longer[1:].endswith(shorter[1:])
    if a_wild:
        return b.endswith(a[1:])
    if b_wild:
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """True when every name ``a`` matches is also matched by ``b`` (``foo.com`` is a subset of ``*.com``)."""
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild:
        return b_wild and len(a) >= len(b) and a[1:].endswith(b[1:])
    if b_wild:
        return a.endswith(b[1:])
    return a == b


# --- addresses and ports ---------------------------------------------------------------------------------


def is_ip_address(value: str) -> bool:
    """True for a plain IPv4 or IPv6 address (no prefix length, no port)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def ip_address_error(value: str) -> str | None:
    """Why ``value`` is not an IP address, or ``None``."""
    return None if is_ip_address(value) else f"{value} is not a valid IP"


def ip_subnet_error(value: str) -> str | None:
    """Why ``value`` is neither an IP address nor a CIDR block (``10.0.0.0/8``, ``fd00::/8``), or ``None``.

    Like Go's ``netip.ParsePrefix``, host bits may be set (``10.0.0.1/8`` is accepted).
    """
    if value.count("/") == 1:
        addr, _, bits = value.partition("/")
        try:
            ip = ipaddress.ip_address(addr)
            if not bits.isdigit() or (len(bits) > 1 and bits[0] == "0") or int(bits) > ip.max_prefixlen:
                raise ValueError(bits)
            if "%" in addr:  # a zone makes no sense in a prefix
                raise ValueError(addr)
        except ValueError:
            return f"{value} is not a valid CIDR block"
        return None
    return ip_address_error(value)


def validate_ip_address(r: Reporter, path: str, value: str | None) -> None:
    """Report at ``path`` when ``value`` is not an IP address."""
    if value is not None and (problem := ip_address_error(value)):
        r.error(path, problem)


def validate_ip_subnet(r: Reporter, path: str, value: str | None) -> None:
    """Report at ``path`` when ``value`` is neither an IP address nor a CIDR block."""
    if value is not None and (problem := ip_subnet_error(value)):
        r.error(path, problem)


def port_error(port: int) -> str | None:
    """Why ``port`` is not a usable port number, or ``None``."""
    if 1 <= port <= 65535:
        return None
    return f"port must be between 1-65535 (got {port})"


def validate_port(r: Reporter, path: str, port: int | None) -> None:
    """Report at ``path`` a port outside 1..65535 (``None`` means unset and is fine)."""
    if port is not None and (problem := port_error(port)):
        r.error(path, problem)


def validate_unix_address(r: Reporter, path: str, addr: str | None) -> None:
    """Report a Unix domain socket path that is empty or not an absolute path to a file (``@name`` is an
    abstract socket and is fine)."""
    if addr is None:
        return
    if not addr:
        r.error(path, "unix address must not be empty")
    elif not addr.startswith("@") and (not addr.startswith("/") or addr.endswith("/")):
        r.error(path, f"{addr} is not an absolute path to a file")


# --- durations and percentages ---------------------------------------------------------------------------

_MS = datetime.timedelta(milliseconds=1)


def duration_error(d: datetime.timedelta) -> str | None:
    """Why ``d`` is not an Istio duration (at least 1ms, whole milliseconds), or ``None``."""
    if d < _MS:
        return "must be a valid duration greater than or equal to 1ms"
    if d.microseconds % 1000:
        return "only durations to ms precision are supported"
    return None


def validate_duration(r: Reporter, path: str, d: datetime.timedelta | None) -> None:
    """Report at ``path`` a duration below 1ms or with sub-millisecond precision."""
    if d is not None and (problem := duration_error(d)):
        r.error(path, problem)


def percentage_error(value: float) -> str | None:
    """Why ``value`` is not an Istio fractional percentage (0, or 0.0001..100), or ``None``."""
    if value < 0.0 or value > 100.0 or 0.0 < value < 0.0001:
        return f"percentage {value:g} is neither 0.0, nor in range [0.0001, 100.0]"
    return None


def validate_percentage(r: Reporter, path: str, value: Any) -> None:
    """Report a fractional percentage outside 0 or 0.0001..100.

    ``value`` is a float or a ``Percent`` message (its ``value``; an empty ``Percent`` means 0).
    """
    if value is None:
        return
    number = value if isinstance(value, (int, float)) else (getattr(value, "value", None) or 0.0)
    if problem := percentage_error(float(number)):
        r.error(path, problem)


def validate_percent(r: Reporter, path: str, value: int | None) -> None:
    """Report an integer percentage outside 0..100."""
    if value is not None and not 0 <= value <= 100:
        r.error(path, f"percentage {value} is not in range 0..100")


# --- labels and selectors --------------------------------------------------------------------------------

_QUALIFIED_NAME = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_RE = re.compile(rf"((?:{_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*)/)?({_QUALIFIED_NAME})")
_LABEL_VALUE_RE = re.compile(rf"(?:{_QUALIFIED_NAME})?")


def label_key_error(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key (``[dns.prefix/]name``), or ``None``."""
    m = _LABEL_KEY_RE.fullmatch(key)
    if m is None:
        return f'invalid label key: "{key}"'
    if m.group(1) and len(m.group(1)) - 1 > 253:
        return f'invalid label key: "{key}" (DNS prefix is too long)'
    if len(m.group(2)) > _DNS1123_LABEL_MAX:
        return f'invalid label key: "{key}" (name is too long)'
    return None


def is_label_value(value: str) -> bool:
    """True for a Kubernetes label value: empty, or alphanumerics with ``-_.`` inside.

    Istio does not enforce Kubernetes' 63-character limit on values here, so neither does this.
    """
    return _LABEL_VALUE_RE.fullmatch(value) is not None


def validate_labels(r: Reporter, path: str, labels: Mapping[str, str]) -> None:
    """Report each invalid key or value of the label map at ``path`` (findings land on the entry)."""
    at = r.at(path)
    for key, value in labels.items():
        if problem := label_key_error(key):
            at.error(key_path(key), problem)
        if not is_label_value(value):
            at.error(key_path(key), f'invalid label value: "{value}"')


def validate_selector_labels(r: Reporter, path: str, labels: Mapping[str, str]) -> None:
    """Report workload-selector labels Istio refuses (an empty key, a ``*`` in key or value), and warn when
    the selector has no labels at all (it then selects every workload in the namespace)."""
    at = r.at(path)
    for key, value in labels.items():
        if key == "":
            at.error(key_path(key), f'empty key is not supported in selector: "={value}"')
        if "*" in key or "*" in value:
            at.error(key_path(key), f'wildcard is not supported in selector: "{key}={value}"')
    if not labels:
        r.warn(path, "workload selector specified without labels")


# --- exportTo, gateways, namespace/host ------------------------------------------------------------------


def validate_export_to(
    r: Reporter,
    path: str,
    namespace: str,
    export_to: Iterable[str],
    *,
    service_entry: bool = False,
    dr_with_selector: bool = False,
) -> None:
    """Report ``exportTo`` problems: duplicates (``.`` counts as ``namespace``), entries that are not ``.``,
    ``*`` or a namespace name, ``*`` mixed with others, and ``~`` except alone on a ServiceEntry.

    ``dr_with_selector`` adds the rule that a DestinationRule with a workload selector may only be exported to
    its own namespace.
    """
    entries = list(export_to)
    if not entries:
        return
    at = r.at(path)
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        key = namespace if entry == "." else entry
        if key in seen:
            if key != entry:
                at.error(f"[{i}]", f"duplicate entries in exportTo: . and current namespace {namespace}")
            else:
                at.error(f"[{i}]", f"duplicate entries in exportTo for entry {entry}")
            continue
        if service_entry and entry == "~":
            seen.add(key)
        elif key == "~":
            at.error(f"[{i}]", "exportTo ~ (none) is not allowed for Istio configuration objects")
        elif key not in (".", "*") and not is_dns1123_label(key):
            at.error(f"[{i}]", "only .,*, or a valid DNS 1123 label is allowed as exportTo entry")
        else:
            seen.add(key)
    if dr_with_selector and seen:
        if namespace not in seen:
            r.error(
                path, "destination rule with workload selector cannot have exportTo beyond current namespace"
            )
        elif len(seen) > 1:
            r.error(path, "destination rule with workload selector cannot have multiple entries in exportTo")
    if "*" in seen and len(entries) > 1:
        r.error(path, "cannot have both public (*) and non-public exportTo values for a resource")
    if "~" in seen and len(entries) > 1:
        r.error(path, "cannot export service entry to no one (~) and someone")


def validate_gateway_names(
    r: Reporter, path: str, names: Iterable[str], *, gateway_semantics: bool = False
) -> None:
    """Report gateway references that are not ``mesh``, ``<namespace>/<name>`` or a (legacy) DNS name; warn on
    the legacy ``name.namespace...`` form.

    ``path`` is the list's path; findings land on each entry.
    """
    at = r.at(path)
    for i, name in enumerate(names):
        item = f"[{i}]"
        ns, slash, gw = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                at.warn(
                    item,
                    f'using legacy gatewayName format "{name}"; prefer the <namespace>/<name> format: '
                    f'"{parts[1]}/{parts[0]}"',
                )
            if problem := fqdn_error(name):
                at.error(item, problem)
            continue
        if not ns or not gw:
            at.error(item, "config namespace and gateway name cannot be empty")
        if not is_dns1123_label(ns):
            at.error(item, f'invalid value for namespace: "{ns}"')
        if not is_dns1123_label(gw) and not gateway_semantics:
            at.error(item, f'invalid value for gateway name: "{gw}"')


def _hostname_part_problems(hostname: str, is_gateway: bool) -> list[str]:
    problems: list[str] = []
    if hostname != "*" and "." not in hostname:
        problems.append("short names (non FQDN) are not allowed")
    problem = wildcard_domain_error(hostname)
    if problem and not (is_gateway and is_ip_address(hostname)):
        problems.append(problem)  # gateways may name an IP instead of a host
    if "*" in hostname and hostname != "*" and not hostname.startswith("*."):
        problems.append(f'partial wildcard "{hostname}" not allowed')
    return problems


def validate_namespace_slash_hostname(
    r: Reporter, path: str, hostname: str, *, is_gateway: bool, gateway_semantics: bool = False
) -> None:
    """Report a Sidecar/Gateway ``hosts`` entry that is not ``namespace/dnsName``.

    Sidecars accept ``*``, ``.``, ``~ns`` or a namespace name before the slash; Gateways accept ``*``, ``.``
    or a namespace name, and also a bare host (the old form).
    """
    ns, slash, name = hostname.partition("/")
    if not slash:
        if is_gateway:
            for problem in _hostname_part_problems(hostname, True):
                r.error(path, problem)
        else:
            r.error(path, "host must be of form namespace/dnsName")
        return
    if not ns or not name:
        r.error(path, "config namespace and dnsName in host entry cannot be empty")
    if not is_gateway:
        bare = ns.removeprefix("~")
        if bare not in ("", "*", ".") and not is_dns1123_label(bare):
            r.error(path, f'invalid namespace value "{ns}" in sidecar')
    elif ns not in ("*", ".") and not (ns == "~" and gateway_semantics) and not is_dns1123_label(ns):
        r.error(path, f'invalid namespace value "{ns}" in gateway')
    for problem in _hostname_part_problems(name, is_gateway):
        r.error(path, problem)


def validate_subset_name(r: Reporter, path: str, name: str | None) -> None:
    """Report a subset name that is empty or not a DNS label."""
    if name is None:
        return
    if not name:
        r.error(path, "subset name cannot be empty")
    elif not is_dns1123_label(name):
        r.error(path, f"subset name is invalid: {name}")


# --- regular expressions and string matches --------------------------------------------------------------

#: Envoy limits RE2 program size; Istio approximates that by the regex's length.
MAX_REGEX_LENGTH = _REGEX_MAX


def regex_error(regex: str) -> str | None:
    """Why ``regex`` is not an RE2 expression Istio accepts (too long, or not RE2 syntax), or ``None``.

    The same check the routing engine applies before compiling a pattern, so validation and matching agree.

    >>> regex_error("(?<=a)b")
    'invalid regex: invalid perl operator: (?<=; Istio uses RE2 syntax (https://github.com/google/re2/wiki/Syntax)'
    """
    return validate_re2(regex)


def validate_regex(r: Reporter, path: str, regex: str | None) -> None:
    """Report at ``path`` a regex that RE2 rejects or that is longer than 1024 characters."""
    if regex is not None and (problem := regex_error(regex)):
        r.error(path, problem)


def validate_string_match(r: Reporter, path: str, sm: Any, *, allow_empty_prefix: bool = False) -> None:
    """Report a ``StringMatch`` (``exact``/``prefix``/``regex``) Istio refuses: an empty prefix (unless
    ``allow_empty_prefix``, as for ``uri``), an empty regex, or a regex RE2 rejects.

    An empty match (none of the three set) is accepted, as Istio does; it matches anything.
    """
    if sm is None:
        return
    prefix, regex = getattr(sm, "prefix", None), getattr(sm, "regex", None)
    if prefix == "" and not allow_empty_prefix:
        r.error(f"{path}.prefix", "prefix string match should not be empty")
    if regex is not None:
        if regex == "":
            r.error(f"{path}.regex", "regex string match should not be empty")
        else:
            validate_regex(r, f"{path}.regex", regex)


# --- HTTP headers ----------------------------------------------------------------------------------------

#: HTTP/2 pseudo-headers a route may match on.
PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~A-Za-z0-9]+")  # RFC 7230 token
_STRICT_HEADER_RE = re.compile(r"[-_A-Za-z0-9]+")
_PROBE_HEADER_RE = re.compile(r"[-A-Za-z0-9]+")
_HEADER_VALUE_RE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_JWT_CLAIM_PREFIX = "@request.auth.claims"


def is_jwt_claim_route(name: str) -> bool:
    """True for a JWT-claim pseudo header a route may match (``@request.auth.claims.groups``, or
    ``@request.auth.claims[a][b]``)."""
    if not name.lower().startswith(_JWT_CLAIM_PREFIX):
        return False
    rest = name[len(_JWT_CLAIM_PREFIX) :]
    if rest.startswith(".") and len(rest) > 1:
        return True
    return rest.startswith("[") and rest.endswith("]") and len(rest) > 2


def is_internal_header(name: str) -> bool:
    """True for a header Envoy owns and a route may not modify: pseudo-headers and ``Host``."""
    return name.startswith(":") or name.lower() == "host"


def is_authority_header(name: str) -> bool:
    """True for ``:authority`` or ``Host`` (either case)."""
    return name.lower() in (":authority", "host")


def validate_header_name(r: Reporter, path: str, name: str) -> None:
    """Report a header name a route may not match on; pseudo-headers and JWT-claim names are allowed."""
    if name == "":
        r.error(path, "header name cannot be empty")
    elif not (is_jwt_claim_route(name) or name in PSEUDO_HEADERS or _TOKEN_RE.fullmatch(name)):
        r.error(path, f"header name {name} is not a valid header name")


def validate_strict_header_name(r: Reporter, path: str, name: str) -> None:
    """Report a header name outside Istio's conservative set (letters, digits, ``-`` and ``_``)."""
    if name == "":
        r.error(path, "header name cannot be empty")
    elif not _STRICT_HEADER_RE.fullmatch(name):
        r.error(path, f"header name {name} is not a valid header name")


def validate_probe_header_name(r: Reporter, path: str, name: str) -> None:
    """Report a header name a Kubernetes HTTP probe would refuse (letters, digits and ``-`` only)."""
    if name == "":
        r.error(path, "header name cannot be empty")
    elif not _PROBE_HEADER_RE.fullmatch(name):
        r.error(path, f"header name {name} is not a valid header name")


def validate_cors_header_name(r: Reporter, path: str, name: str) -> None:
    """Report a CORS allow/expose header that is neither ``*`` nor an HTTP token."""
    if name == "":
        r.error(path, "header name cannot be empty")
    elif name != "*" and not _TOKEN_RE.fullmatch(name):
        r.error(path, f"header name {name} is not a valid header name")


def validate_header_operation_name(
    r: Reporter, path: str, name: str, *, allow_authority: bool = False
) -> None:
    """Report a header a route may not set, add or remove.

    ``allow_authority`` is for request ``set``/``add``, where ``Host``/``:authority`` rewrite the authority;
    everywhere else ``Host`` and every ``:``-prefixed header are refused.
    """
    if name == "":
        r.error(path, "header name cannot be empty")
    elif allow_authority:
        if is_internal_header(name) and not is_authority_header(name):
            r.error(path, f'invalid header "{name}": header cannot have ":" prefix')
    elif name.lower() == "host":
        r.error(path, f'invalid header "{name}": cannot set Host header')
    elif is_internal_header(name):
        r.error(path, f'invalid header "{name}": header cannot have ":" prefix')


def header_value_error(value: str) -> str | None:
    """Why ``value`` is not a header value Envoy accepts, or ``None``.

    Values may not hold control characters, and ``%`` starts an Envoy ``%VARIABLE%`` or
    ``%VARIABLE(args)%`` unless doubled (``100%%``); the variable's name is not checked.
    """
    if not _HEADER_VALUE_RE.fullmatch(value):
        return f"header value configuration {value} is invalid"
    problem = _header_format_error(value)
    return f"header value configuration: {problem}" if problem else None


# States of the scan of an Envoy header format string, after Envoy's header parser.
(
    _LITERAL,
    _VAR_NAME,
    _EXPECT_ARRAY,
    _EXPECT_STRING,
    _STRING,
    _EXPECT_DELIM,
    _EXPECT_ARGS_END,
    _EXPECT_VAR_END,
) = range(8)


def _header_format_error(value: str) -> str | None:
    state = _LITERAL
    pos = 0
    n = len(value)
    while pos < n:
        ch = value[pos]
        has_next = pos + 1 < n
        if state == _LITERAL:
            if ch == "%":
                if not has_next:
                    return "un-escaped % at the end"
                if value[pos + 1] == "%":
                    pos += 1  # "%%" is a literal percent sign
                else:
                    state = _VAR_NAME
        elif state == _VAR_NAME:
            if ch == "%":
                state = _LITERAL
            elif ch == "(":
                state = _EXPECT_ARRAY
        elif state == _EXPECT_ARRAY:
            if ch == "[":
                state = _EXPECT_STRING
            elif ch != " ":
                state = _STRING
        elif state == _EXPECT_DELIM:
            if ch == ",":
                state = _EXPECT_STRING
            elif ch == "]":
                state = _EXPECT_ARGS_END
            elif ch != " ":
                return "expecting ',', ']', or whitespace"
        elif state == _EXPECT_STRING:
            if ch == '"':
                state = _STRING
            elif ch != " ":
                return "expecting '\"'"
        elif state == _STRING:
            if ch == "\\":
                if not has_next:
                    return "un-terminated backslash in JSON string"
                pos += 1
            elif ch == ")":
                state = _EXPECT_VAR_END
            elif ch == '"':
                state = _EXPECT_DELIM
        elif state == _EXPECT_ARGS_END:
            if ch == ")":
                state = _EXPECT_VAR_END
            elif ch != " ":
                return "expecting ')' or whitespace"
        elif state == _EXPECT_VAR_END:
            if ch == "%":
                state = _LITERAL
            elif ch != " ":
                return "expecting '%' or whitespace"
        pos += 1
    if state != _LITERAL:
        return f"un-terminated variable expression '{value}'"
    return None


def validate_header_value(r: Reporter, path: str, value: str | None) -> None:
    """Report a header value with control characters or a malformed ``%VARIABLE%``."""
    if value is not None and (problem := header_value_error(value)):
        r.error(path, problem)


#: Methods a CORS policy may allow (Go's known methods, plus ``*``).
CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"}
)

#: gRPC status names accepted by fault injection's ``grpcStatus``.
GRPC_STATUS_CODES = frozenset(
    {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)

# --- retries ---------------------------------------------------------------------------------------------

#: ``retryOn`` conditions: Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on policies Istio accepts.
RETRY_ON_POLICIES = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)

# The status codes Go's net/http has a name for; Istio accepts exactly these as numeric retryOn entries.
_KNOWN_HTTP_STATUS = frozenset(
    {100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226}
    | {300, 301, 302, 303, 304, 305, 307, 308}
    | set(range(400, 419))
    | {421, 422, 423, 424, 425, 426, 428, 429, 431, 451}
    | {500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511}
)
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _is_retry_on_policy(policy: str) -> bool:
    if policy in RETRY_ON_POLICIES:
        return True
    return bool(_INTEGER.fullmatch(policy)) and int(policy) in _KNOWN_HTTP_STATUS


def validate_http_retry(r: Reporter, path: str, retries: Any) -> None:
    """Report an ``HTTPRetry`` Istio refuses (shared by VirtualService routes and mesh-wide retry defaults).

    ``attempts: 0`` disables retries, so combining it with ``perTryTimeout``, ``retryOn`` or
    ``retryRemoteLocalities`` is contradictory; ``retryOn`` is a comma-separated list of Envoy conditions and
    HTTP status codes; durations need whole milliseconds of at least 1ms.
    """
    if retries is None:
        return
    at = r.at(path)
    attempts = retries.attempts or 0
    if attempts < 0:
        at.error("attempts", "attempts cannot be negative")
    if attempts == 0 and (
        retries.per_try_timeout is not None or retries.retry_on or retries.retry_remote_localities is not None
    ):
        at.error("attempts", "http retry policy configured when attempts are set to 0 (disabled)")
    validate_duration(at, "perTryTimeout", retries.per_try_timeout)
    if retries.retry_on:
        for policy in retries.retry_on.split(","):
            if not _is_retry_on_policy(policy):
                at.error("retryOn", f'"{policy}" is not a valid retryOn policy')
    validate_duration(at, "backoff", retries.backoff)
