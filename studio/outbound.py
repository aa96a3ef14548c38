"""Outbound HTTP to addresses users give us (webhooks, photos by URL): one strict, pinned, capped client.

Three rules close server-side request forgery at its root:
1. One strict parse. A URL is accepted only when it is plain RFC 3986 (no backslash, space, control or non-ASCII
   character, no stray '%'), http or https, without user info, and its host is a DNS name of letters, digits and
   hyphens or an IP literal. Parsers then cannot disagree about the host: `http://127.0.0.1\\x.attacker.test/` was
   checked as a name by urlsplit while urllib3 connected to 127.0.0.1.
2. One resolution, pinned. requests-hardened resolves the host once, and the connection goes to exactly that
   address (with the original name for the Host header, TLS SNI and certificate checks), so a DNS answer that
   changes between the check and the call (rebinding) changes nothing.
3. The address connected to is the address judged, after unwrapping the IPv4 address that IPv4-mapped,
   IPv4-compatible, NAT64, 6to4 and Teredo addresses carry, so ::ffff:127.0.0.1 or 64:ff9b::a00:1 are judged as
   127.0.0.1 and 10.0.0.1.
A webhook call reads at most a few kilobytes of the answer and is bounded in time; a photo's fetch reads at most
the upload limit, within a time limit in all, and follows at most five redirects, each parsed and judged again.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin

import requests
import rfc3986
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter
from rfc3986 import exceptions as uri_errors
from rfc3986 import validators
from urllib3.util import Timeout
from urllib3.util import parse_url as client_parse_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
MAX_RESPONSE_BYTES = 4096
# Every character RFC 3986 allows in a URI, '%' only as the start of an escape.
_URI_CHARACTERS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# Special-purpose ranges (IANA's registries) that are not globally reachable, listed here too because older Python
# releases' is_global tables miss some of them (CPython issue 113171).
_SPECIAL_PURPOSE = tuple(ipaddress.ip_network(network) for network in (
    "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15", "2001:db8::/32", "2001:10::/28", "2001:20::/28",
    "3fff::/20", "5f00::/16", "100::/64"))


class UnsafeURL(ValueError):
    """A URL we will not call; the message says why, fit to show to the person who gave it."""


class RefusedAddress(requests.RequestException):
    """The host resolved to an address that is not public: no call was made."""


@dataclass(frozen=True)
class Target:
    """A URL that passed the strict parse."""

    url: str
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int


@dataclass(frozen=True)
class Answer:
    """What a receiver answered: its status and at most MAX_RESPONSE_BYTES of its body."""

    status: int
    body: bytes


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo), else None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        server, client = address.teredo
        # Both ends count: the packet goes to the Teredo server and on to the (obfuscated) client address.
        return client if non_public_reason(client) else server
    packed = address.packed
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(packed[-4:])
    if packed[:12] == bytes(12) and int.from_bytes(packed[12:], "big") > 1:
        # IPv4-compatible (::a.b.c.d, deprecated): some stacks still route it to the IPv4 address.
        return ipaddress.IPv4Address(packed[-4:])
    return None


def non_public_reason(address: IPAddress) -> str | None:
    """Return what kind of non-public address this is ("a loopback address"), None for a public one."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = non_public_reason(inner)
        return f"{reason} inside an IPv6 address" if reason else None
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local),
              ("multicast", address.is_multicast), ("unspecified", address.is_unspecified),
              ("site-local", isinstance(address, ipaddress.IPv6Address) and address in _SITE_LOCAL),
              ("shared (carrier-grade NAT)", address in _SHARED_ADDRESS_SPACE),
              ("private", address.is_private), ("reserved", address.is_reserved),
              ("special-purpose", any(address in network for network in _SPECIAL_PURPOSE
                                      if network.version == address.version)))
    for label, flag in checks:
        if flag:
            return f"a {label} address"
    return None if address.is_global else "not a public address"


def check_url(value: object, *, allow_private: bool) -> Target:
    """Parse a URL strictly; raise UnsafeURL unless it is plain RFC 3986 http(s) naming a host we may call.

    Only what can be told without the network is checked here: a host name's addresses are judged when the call
    is made, since DNS answers change.
    """
    if not isinstance(value, str):
        raise UnsafeURL("must be a URL")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"is too long ({len(url):,} characters; at most {MAX_URL_LENGTH:,})")
    if not url.isascii() or any(character.isspace() or ord(character) < 32 or ord(character) == 127
                                for character in url):
        raise UnsafeURL("must be an ASCII URL without spaces or control characters (encode international names "
                        "as punycode)")
    if not _URI_CHARACTERS.match(url):
        raise UnsafeURL("is not a valid URL: it holds characters RFC 3986 does not allow (such as \\, <, >, \", "
                        "{, }, | or a % not followed by two hex digits)")
    reference = rfc3986.uri_reference(url).normalize()
    if reference.scheme not in ("http", "https") or not reference.authority:
        raise UnsafeURL("must be an http:// or https:// URL with a host")
    try:
        validators.Validator().require_presence_of("scheme", "host").check_validity_of(
            "scheme", "userinfo", "host", "port", "path", "query", "fragment").validate(reference)
    except uri_errors.ValidationError:
        raise UnsafeURL("is not a valid URL") from None
    if reference.userinfo is not None:
        raise UnsafeURL("must not hold a user name or password")
    host = reference.host or ""
    port = int(reference.port) if reference.port else (443 if reference.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise UnsafeURL("is not a valid URL (the port is out of range)")
    address = _ip_literal(host)
    if address is None and _looks_numeric(host):
        # inet_aton reads 2130706433, 0x7f.1 or 127.1 as 127.0.0.1: only the dotted quad is an IPv4 host here.
        raise UnsafeURL("is not a valid URL: write an IPv4 host as four decimal numbers (like 203.0.113.7)")
    if address is None and not _DNS_NAME.match(host):
        raise UnsafeURL("is not a valid URL: the host must be a DNS name of letters, digits, dots and hyphens, "
                        "or an IP address")
    bare_host = host.strip("[]")
    # The client must see the same host, or the check above judged another one than the call would reach.
    if (client_parse_url(url).host or "").strip("[]").lower() != bare_host:
        raise UnsafeURL("is not a valid URL (it is read differently by HTTP clients)")
    if not allow_private:
        name = bare_host.rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            raise UnsafeURL("must point to a public host, not localhost")
        reason = non_public_reason(address) if address is not None else None
        if reason:
            raise UnsafeURL(f"must point to a public address ({bare_host} is {reason})")
    return Target(url=url, scheme=reference.scheme, host=bare_host, port=port)


def _looks_numeric(host: str) -> bool:
    """Return True for a host that resolvers may read as a number (its last label is digits or 0x...)."""
    last = host.rstrip(".").rsplit(".", 1)[-1]
    return last.isdigit() or last.startswith("0x")


def _ip_literal(host: str) -> IPAddress | None:
    """Return the address of an IP-literal host (IPv6 in brackets, without a zone), None for a name."""
    try:
        if host.startswith("[") and host.endswith("]"):
            if "%" in host:
                raise UnsafeURL("is not a valid URL (IPv6 zone identifiers are not allowed)")
            return ipaddress.IPv6Address(host[1:-1])
        return ipaddress.IPv4Address(host)
    except ipaddress.AddressValueError:
        if host.startswith("["):
            raise UnsafeURL("is not a valid URL (a malformed IPv6 address)") from None
        return None


class _PublicAddressAdapter(IPFilterAdapter):
    """requests-hardened's pinning adapter, with the pinned address judged by our stricter rules too."""

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
        """Pin the connection to the resolved address (requests-hardened), then refuse it unless public."""
        try:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        except InvalidIPAddress as error:
            # requests-hardened's own rules refused it first; say why in ours.
            pinned = ipaddress.ip_address(str(error))
            raise RefusedAddress(f"resolves to {pinned}, {non_public_reason(pinned) or 'not a public address'}") \
                from None
        pinned = ipaddress.ip_address(host_params["host"].strip("[]"))
        reason = non_public_reason(pinned)
        if reason:
            raise RefusedAddress(f"resolves to {pinned}, {reason}")
        return host_params, pool_kwargs


def session(*, allow_private: bool) -> requests.Session:
    """Return a session that never follows redirects and, unless private addresses are allowed, pins and judges."""
    config = Config(ip_filter_enable=False, ip_filter_allow_loopback_ips=False, never_redirect=True,
                    default_timeout=(5, 10))
    client = HTTPSession(config)
    if not allow_private:
        client.mount("http://", _PublicAddressAdapter(is_https_proto=False))
        client.mount("https://", _PublicAddressAdapter(is_https_proto=True))
    return client


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool,
         connect_timeout: float | None = None) -> Answer:
    """POST to a parsed target; read at most MAX_RESPONSE_BYTES of the answer within the time allowed.

    connect_timeout bounds the TCP (and TLS) connection on its own, so a host that never accepts is given up on
    sooner than one that is slow to answer; timeout bounds the whole call. Raises RefusedAddress when the host
    resolves to an address we do not call, and requests' exceptions when the call fails (requests.ConnectTimeout:
    no connection in time; requests.ReadTimeout: no answer in time).
    """
    deadline = time.monotonic() + timeout
    connect = min(connect_timeout, timeout) if connect_timeout is not None else timeout
    with session(allow_private=allow_private) as client:
        response = client.post(target.url, data=body, headers=headers, stream=True, allow_redirects=False,
                               timeout=Timeout(connect=connect, read=timeout, total=timeout))
        with response:
            received = bytearray()
            for chunk in response.iter_content(1024):
                received.extend(chunk)
                if len(received) >= MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                    break
            return Answer(response.status_code, bytes(received[:MAX_RESPONSE_BYTES]))


class FetchFailed(Exception):
    """A GET that brought back no usable body; the message says why, fit to show to the person who gave the URL."""


@dataclass(frozen=True)
class Fetched:
    """A body fetched from a URL: its bytes, the content type it claimed and the URL that answered."""

    data: bytes
    content_type: str
    url: str


def fetch(url: str, *, max_bytes: int, timeout: float, allow_private: bool, max_redirects: int = 5,
          user_agent: str = "PhotoStudio/1") -> Fetched:
    """GET a URL through the strict, pinned client: at most max_bytes, within timeout seconds in all, following at
    most max_redirects redirects, each parsed and judged again as the first URL was; raise FetchFailed.

    The caller checks the URL first (check_url), to refuse it before anything is stored.
    """
    deadline = time.monotonic() + timeout
    current = url
    for _ in range(max_redirects + 1):
        try:
            target = check_url(current, allow_private=allow_private)
        except UnsafeURL as error:
            raise FetchFailed(f"the URL {error}" if current == url else f"it redirected to a URL that {error}") \
                from None
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchFailed(f"the URL did not answer within {timeout:g} seconds")
        location = _get_once(target, max_bytes, left, deadline, allow_private, user_agent)
        if isinstance(location, Fetched):
            return location
        current = location
    raise FetchFailed(f"the URL redirected more than {max_redirects} times")


def _get_once(target: Target, max_bytes: int, left: float, deadline: float, allow_private: bool,
              user_agent: str) -> Fetched | str:
    """GET one URL: its body, or where it redirects to (absolute)."""
    try:
        with session(allow_private=allow_private) as client:
            response = client.get(target.url, headers={"User-Agent": user_agent, "Accept": "image/*"}, stream=True,
                                  allow_redirects=False, timeout=Timeout(connect=min(left, 10), read=left,
                                                                         total=left))
            with response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    if not location:
                        raise FetchFailed(f"the URL answered {response.status_code} without a Location")
                    return urljoin(target.url, location)
                if response.status_code != 200:
                    raise FetchFailed(f"the URL answered {response.status_code}"
                                      + (f" {response.reason}" if response.reason else ""))
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchFailed(f"the photo is larger than {_megabytes(max_bytes)}")
                return Fetched(_read_capped(response, max_bytes, deadline), response.headers.get(
                    "Content-Type", ""), target.url)
    except RefusedAddress as error:
        raise FetchFailed(f"{target.host} {error}; photos are only fetched from public addresses") from None
    except requests.Timeout:
        raise FetchFailed("the URL did not answer in time") from None
    except requests.ConnectionError as error:
        cause = error.__cause__ or (error.args[0] if error.args else None)
        if "Name or service not known" in str(cause) or "getaddrinfo" in str(cause) or isinstance(
                cause, socket.gaierror):
            raise FetchFailed(f"the host {target.host} could not be resolved") from None
        raise FetchFailed(f"could not connect to {target.host}") from None
    except requests.RequestException as error:
        raise FetchFailed(f"the download failed ({type(error).__name__})") from None


def _read_capped(response: requests.Response, max_bytes: int, deadline: float) -> bytes:
    """Read the body: refuse it past max_bytes or past the deadline (a server that trickles it)."""
    received = bytearray()
    for chunk in response.iter_content(65536):
        received.extend(chunk)
        if len(received) > max_bytes:
            raise FetchFailed(f"the photo is larger than {_megabytes(max_bytes)}")
        if time.monotonic() > deadline:
            raise FetchFailed("the URL did not send the whole photo in time")
    if not received:
        raise FetchFailed("the URL answered with an empty body")
    return bytes(received)


def _megabytes(size: int) -> str:
    # MiB, as the upload limit is set (20 * 1024 * 1024 reads "20 MB").
    return f"{size / 1048576:g} MB" if size >= 1048576 else f"{size:,} bytes"
