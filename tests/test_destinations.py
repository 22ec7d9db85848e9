"""Where a webhook may go (``destinations``): never inside, however the address is written.
Pure: literal addresses and ``localhost`` (the hosts file) only, no DNS."""

from __future__ import annotations

import pytest

from feedback_mta.destinations import Refused, check_url

INSIDE = [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # the cloud's metadata
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://127.0.0.1:9100/metrics", "loopback"),  # our own metrics port
    ("http://0x7f000001/", "loopback"),  # hex
    ("http://2130706433/", "loopback"),  # decimal
    ("http://0177.0.0.1/", "loopback"),  # octal
    ("http://127.1/", "loopback"),  # short
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
    ("http://[64:ff9b::7f00:1]/", "loopback"),  # NAT64
    ("http://localhost:8025/v1/leads", "loopback"),
    ("http://10.0.0.7/", "private"),
    ("https://192.168.1.1/", "private"),
    ("http://[fd00::1]/", "private"),
    ("http://100.64.0.1/", "non-public"),  # carrier-grade NAT
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
]


@pytest.mark.parametrize(("url", "reason"), INSIDE)
def test_an_address_inside_is_refused_however_it_is_written(url, reason):
    with pytest.raises(Refused, match=rf"is not a public address \({reason}\)"):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)  # tests and local receivers


@pytest.mark.parametrize("url", [
    "http://user:pass@hooks.example.com/x", "https://user@8.8.8.8/",
    "http://8.8.8.8@127.0.0.1/", "ftp://8.8.8.8/", "http:///x", "http://x:99999/",
    "javascript:alert(1)"])
def test_credentials_and_other_schemes_are_refused_even_on_private_networks(url):
    for allow in (False, True):
        with pytest.raises(Refused):
            check_url(url, allow_private=allow)


@pytest.mark.parametrize("url", ["https://8.8.8.8/hooks", "http://[2001:4860:4860::8888]:8080/",
                                 "https://hooks.example.invalid/feedback"])
def test_public_addresses_and_names_that_do_not_resolve_yet_are_taken(url):
    # A name that does not resolve now is checked again, resolved, at each delivery.
    assert check_url(url, allow_private=False).hostname
