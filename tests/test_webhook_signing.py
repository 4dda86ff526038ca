"""Unit tests of the delivery signature (sign/verify) and of the SSRF guard."""

from __future__ import annotations

import ipaddress
import json

import pytest

from moneta.webhooks import SignatureError, sign, verify
from moneta.webhooks.ssrf import (
    IPNetwork,
    UnsafeURLError,
    check_address,
    check_syntax,
    parse_networks,
    pinned,
)

NOW = 1_700_000_000
EVENT = {"id": "0190a0b0-0000-7000-8000-000000000001", "type": "transaction.created", "data": {}}
BODY = json.dumps(EVENT, separators=(",", ":")).encode()


# --- sign / verify -----------------------------------------------------------------------


def test_good_signature_returns_the_event() -> None:
    header = sign(BODY, ["whsec_a"], timestamp=NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify(BODY, header, "whsec_a", now=NOW) == EVENT
    # A str payload is the same bytes.
    assert verify(BODY.decode(), header, "whsec_a", now=NOW) == EVENT


def test_default_timestamp_is_now() -> None:
    header = sign(BODY, ["whsec_a"])
    assert verify(BODY, header, "whsec_a") == EVENT


def test_wrong_secret_is_refused() -> None:
    header = sign(BODY, ["whsec_a"], timestamp=NOW)
    with pytest.raises(SignatureError):
        verify(BODY, header, "whsec_b", now=NOW)
    with pytest.raises(SignatureError):
        verify(BODY, header, [], now=NOW)


@pytest.mark.parametrize(
    "tampered",
    [
        BODY.replace(b"transaction.created", b"transaction.voided"),
        BODY + b" ",
        b" " + BODY,
        BODY[:-1],
        b"",
    ],
)
def test_tampered_body_is_refused(tampered: bytes) -> None:
    header = sign(BODY, ["whsec_a"], timestamp=NOW)
    with pytest.raises(SignatureError):
        verify(tampered, header, "whsec_a", now=NOW)


def test_tampered_timestamp_is_refused() -> None:
    """The timestamp is signed: moving it to look fresh breaks the signature."""
    header = sign(BODY, ["whsec_a"], timestamp=NOW - 3600)
    moved = header.replace(f"t={NOW - 3600}", f"t={NOW}")
    with pytest.raises(SignatureError):
        verify(BODY, moved, "whsec_a", now=NOW)


@pytest.mark.parametrize("skew", [-301, 301, -86_400, 86_400])
def test_timestamp_beyond_tolerance_is_refused(skew: int) -> None:
    header = sign(BODY, ["whsec_a"], timestamp=NOW + skew)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(BODY, header, "whsec_a", now=NOW)


@pytest.mark.parametrize("skew", [-300, -299, 0, 299, 300])
def test_timestamp_within_tolerance_is_accepted(skew: int) -> None:
    header = sign(BODY, ["whsec_a"], timestamp=NOW + skew)
    assert verify(BODY, header, "whsec_a", now=NOW) == EVENT


def test_tolerance_is_configurable() -> None:
    header = sign(BODY, ["whsec_a"], timestamp=NOW - 10)
    assert verify(BODY, header, "whsec_a", tolerance_s=10, now=NOW) == EVENT
    with pytest.raises(SignatureError):
        verify(BODY, header, "whsec_a", tolerance_s=9, now=NOW)


ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))


def _valid_v1() -> str:
    return sign(BODY, ["whsec_a"], timestamp=NOW).split(",", 1)[1]


@pytest.mark.parametrize(
    "header",
    [
        "",
        ",",
        "garbage",
        f"t={NOW}",  # no signature
        _valid_v1(),  # no timestamp
        f"t=,{_valid_v1()}",
        f"t=abc,{_valid_v1()}",
        f"t=-{NOW},{_valid_v1()}",
        f"t={NOW}.5,{_valid_v1()}",
        f"t={NOW},v1=",
        f"t={NOW},v0={_valid_v1()[3:]}",  # an unknown scheme is not a v1 signature
        f"t={NOW},v1=deadbeef",
        f"t={NOW},V1={_valid_v1()[3:]}",
        f"t={NOW};{_valid_v1()}",
        # Non-ASCII, from anyone who can reach the receiver: a SignatureError, not a crash.
        f"t=\u00b2,{_valid_v1()}",  # superscript two: str.isdigit() but not int()
        f"t={str(NOW).translate(ARABIC_INDIC_DIGITS)},{_valid_v1()}",
        f"t={NOW},v1=\u00e9",
        f"t={NOW},v1={_valid_v1()[3:-1]}\u00e9",
        f"t={NOW},v1=\uff41\uff42",
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureError):
        verify(BODY, header, "whsec_a", now=NOW)


def test_whitespace_and_unknown_parts_are_tolerated() -> None:
    header = sign(BODY, ["whsec_a"], timestamp=NOW)
    t, v1 = header.split(",")
    assert verify(BODY, f" {t} , v0=abc , {v1} ", "whsec_a", now=NOW) == EVENT
    # Order does not matter.
    assert verify(BODY, f"{v1},{t}", "whsec_a", now=NOW) == EVENT


def test_two_signatures_during_rotation_either_secret_passes() -> None:
    header = sign(BODY, ["whsec_new", "whsec_old"], timestamp=NOW)
    parts = header.split(",")
    assert parts[0] == f"t={NOW}"
    assert len(parts) == 3
    assert all(p.startswith("v1=") for p in parts[1:])
    assert parts[1] != parts[2]
    assert verify(BODY, header, "whsec_new", now=NOW) == EVENT
    assert verify(BODY, header, "whsec_old", now=NOW) == EVENT
    with pytest.raises(SignatureError):
        verify(BODY, header, "whsec_other", now=NOW)
    # Newest first: the first v1 is the new secret's alone.
    assert verify(BODY, f"t={NOW},{parts[1]}", "whsec_new", now=NOW) == EVENT
    with pytest.raises(SignatureError):
        verify(BODY, f"t={NOW},{parts[1]}", "whsec_old", now=NOW)


def test_receiver_holding_several_secrets() -> None:
    header = sign(BODY, ["whsec_a"], timestamp=NOW)
    assert verify(BODY, header, ["whsec_x", "whsec_a"], now=NOW) == EVENT
    assert verify(BODY, header, ("whsec_a", "whsec_x"), now=NOW) == EVENT
    assert verify(BODY, header, iter(["whsec_x", "whsec_a"]), now=NOW) == EVENT
    with pytest.raises(SignatureError):
        verify(BODY, header, ["whsec_x", "whsec_y"], now=NOW)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The documented scheme, so receivers in other languages can implement it."""
    import hashlib
    import hmac

    header = sign(BODY, ["whsec_a"], timestamp=NOW)
    expected = hmac.new(b"whsec_a", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"


def test_signature_error_is_a_value_error() -> None:
    assert issubclass(SignatureError, ValueError)


# --- SSRF: addresses ----------------------------------------------------------------------

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "192.168.1.10",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",  # noqa: S104
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00::1",
    "ff02::1",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    # IPv6 spellings that lead to a private IPv4 address: NAT64, 6to4, Teredo, compatible.
    "64:ff9b::a00:1",
    "64:ff9b:1::a9fe:a9fe",
    "2002:a00:1::",
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo to 10.0.0.1
    "::127.0.0.1",
]
ACCEPTED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 to 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(UnsafeURLError, match="non-public"):
        check_address(ipaddress.ip_address(address), [])


@pytest.mark.parametrize("address", ACCEPTED)
def test_public_addresses_are_accepted(address: str) -> None:
    check_address(ipaddress.ip_address(address), [])


def test_allowed_networks_override() -> None:
    allowed: list[IPNetwork] = parse_networks(" 127.0.0.1/32, 10.1.0.0/16 ,, fd00::/8")
    assert [str(n) for n in allowed] == ["127.0.0.1/32", "10.1.0.0/16", "fd00::/8"]
    for ok in ["127.0.0.1", "10.1.2.3", "fd00::1", "::ffff:127.0.0.1", "::ffff:10.1.0.9"]:
        check_address(ipaddress.ip_address(ok), allowed)
    for refused in ["127.0.0.2", "10.2.0.1", "::1", "fc00::1", "169.254.169.254"]:
        with pytest.raises(UnsafeURLError):
            check_address(ipaddress.ip_address(refused), allowed)


def test_parse_networks() -> None:
    assert parse_networks("") == []
    assert parse_networks(" , ") == []
    # Host bits are forgiven (strict=False).
    assert [str(n) for n in parse_networks("10.1.2.3/8")] == ["10.0.0.0/8"]
    with pytest.raises(ValueError):
        parse_networks("not-a-network")


# --- SSRF: URL syntax ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_http", "expected"),
    [
        ("https://example.com/hook", False, ("example.com", 443)),
        ("https://example.com:8443/hook", False, ("example.com", 8443)),
        ("http://example.com/hook", True, ("example.com", 80)),
        ("https://example.com/hook", True, ("example.com", 443)),
        ("http://127.0.0.1:9000/x", True, ("127.0.0.1", 9000)),
        ("https://[2001:db8::1]:8443/x", False, ("2001:db8::1", 8443)),
        ("HTTPS://EXAMPLE.com/x", False, ("example.com", 443)),
    ],
)
def test_check_syntax_accepts(url: str, allow_http: bool, expected: tuple[str, int]) -> None:
    assert check_syntax(url, allow_http) == expected


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        ("ftp://example.com/", True, "must start with"),
        ("ftp://example.com/", False, "must start with https://"),
        ("file:///etc/passwd", True, "must start with"),
        ("gopher://example.com/", True, "must start with"),
        ("example.com/hook", True, "must start with"),
        ("//example.com/hook", True, "must start with"),
        ("http://example.com/hook", False, "must start with https://"),
        ("https://user:pw@example.com/", False, "credentials"),
        ("https://user@example.com/", False, "credentials"),
        ("https://:pw@example.com/", False, "credentials"),
        ("http://user:pw@127.0.0.1/", True, "credentials"),
        ("https://example.com:99999/", False, "port"),
        ("https://example.com:-1/", False, "port"),
        ("https://example.com:abc/", False, "port"),
        ("https:///path", False, "no host"),
        ("https://", False, "no host"),
        ("https://:443/", False, "no host"),
    ],
)
def test_check_syntax_refuses(url: str, allow_http: bool, message: str) -> None:
    with pytest.raises(UnsafeURLError, match=message):
        check_syntax(url, allow_http)


def test_https_only_message_does_not_offer_http() -> None:
    with pytest.raises(UnsafeURLError) as refused:
        check_syntax("http://example.com/", allow_http=False)
    assert "http://" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "address", "expected", "sni"),
    [
        ("http://hooks.example/in?a=1", "8.8.8.8", "http://8.8.8.8/in?a=1", None),
        ("https://hooks.example:8443/x", "8.8.8.8", "https://8.8.8.8:8443/x", "hooks.example"),
        ("https://hooks.example/x", "2001:db8::1", "https://[2001:db8::1]/x", "hooks.example"),
    ],
)
def test_delivery_connects_to_the_checked_address(
    url: str, address: str, expected: str, sni: str | None
) -> None:
    """No second DNS lookup at connect time: the URL carries the approved address, and
    TLS still verifies the endpoint's own name."""
    aimed, extensions = pinned(url, ipaddress.ip_address(address))
    assert aimed == expected
    assert extensions.get("sni_hostname") == sni
