"""Config validation: wrong input is refused with a message that names the key."""

from __future__ import annotations

import pytest

from feedback_mta import config
from feedback_mta.config import ConfigError, from_mapping, parse_duration, parse_size
from tests.conftest import ROOT

MINIMAL = {
    "database": {"url": "sqlite:///x.db"},
    "smtp": {"host": "127.0.0.1", "port": 25, "domain": "fb.example.com", "lmtp": False,
             "max_message_size": "10MB"},
    "security": {"secret_key": "0123456789abcdef0123"},
}


def _with(section: str, **values) -> dict:
    data = {k: dict(v) for k, v in MINIMAL.items()}
    data.setdefault(section, {}).update(values)
    return data


def test_every_key_is_declared_once_with_help_and_the_example_sets_each():
    """The keys come from one declaration (``config.key``); the validation, the required
    list and this test read it, so a key added there and not to the example fails here."""
    import tomllib

    declared = list(config.keys())
    assert len(declared) >= 50 and len({(s, k) for s, k, _, _ in declared}) == len(declared)
    assert all(len(help_text) > 20 for _, _, _, help_text in declared)
    example = tomllib.loads((ROOT / "config" / "feedback-mta.toml").read_text())
    def flat(tables: dict, prefix: str = "") -> set[tuple[str, str]]:
        out = set()
        for name, value in tables.items():
            if isinstance(value, dict):
                out |= flat(value, f"{prefix}{name}.")
            else:
                out.add((prefix.rstrip("."), name))
        return out

    assert {(s, k) for s, k, _, _ in declared} == flat(example)
    defaults = config.from_mapping(MINIMAL, env={})
    for section, key_name, default, _ in declared:
        if (section, key_name) not in {(s, k) for s, v in MINIMAL.items() for k in v}:
            settings = defaults
            for part in section.split("."):
                settings = getattr(settings, part)
            assert getattr(settings, key_name) == default


def test_example_config_is_valid_and_on_sqlite():
    cfg = config.load(ROOT / "config" / "feedback-mta.toml", env={})
    assert cfg.database.url.startswith("sqlite:///")
    assert cfg.smtp.max_message_size == 10 * 1024 * 1024
    assert cfg.smtp.idle_timeout == 300 and cfg.smtp.data_timeout == 600


@pytest.mark.parametrize(("section", "values", "message"), [
    ("smtp", {"port": "25"}, "[smtp] port: expected a whole number"),
    ("smtp", {"port": 70000}, "[smtp] port: expected a whole number from 0 to 65535"),
    ("smtp", {"prot": 25}, "[smtp] prot: unknown key"),
    ("smtp", {"domain": "not a domain"}, "[smtp] domain: expected a domain name"),
    ("smtp", {"lmtp": "yes"}, "[smtp] lmtp: expected true or false"),
    ("smtp", {"max_message_size": "huge"}, "[smtp] max_message_size: expected a size"),
    ("smtp", {"idle_timeout": "5 minutes"}, "[smtp] idle_timeout: expected a duration"),
    ("smtp", {"fbl_aliases": ["fbl+x"]}, "[smtp] fbl_aliases: not a plain local part"),
    ("security", {"secret_key": "short"}, "[security] secret_key: must be at least 16"),
    ("database", {"url": "mysql://x/y"}, "[database] url: expected a sqlite:///PATH"),
    ("database", {"sqlite_synchronous": "off"}, "[database] sqlite_synchronous: expected one"),
    ("processing", {"workers": 0}, "[processing] workers: expected a whole number"),
    ("outbound", {"relay": "localhost"}, "[outbound] relay: expected host:port"),
    ("outbound", {"relay": "localhost:99999"}, "[outbound] relay: port out of range"),
    ("outbound", {"relay": "localhost:0"}, "[outbound] relay: port out of range"),
    ("metrics", {"listen": "9125"}, "[metrics] listen: expected host:port"),
    ("metrics", {"listen": "0.0.0.0:70000"}, "[metrics] listen: port out of range"),
    ("outbound", {"max_attempts": 0}, "[outbound] max_attempts: expected a whole number"),
    ("replies", {"markers": "reply spam"}, "[replies] markers: expected a list of strings"),
    ("replies", {"acknowledge": 1}, "[replies] acknowledge: expected true or false"),
    ("smtpd", {"port": 1}, "unknown section [smtpd]"),
    ("http", {"public_url": "fb.example.com"}, "[http] public_url: expected a URL"),
    ("webhooks", {"mailgun": {"signing_kee": "x"}}, "[webhooks] mailgun: signing_kee: unknown"),
    ("webhooks", {"ses": "sns"}, "[webhooks] ses: must be a table"),
    ("webhooks", {"postmark": {"account": -1}}, "[webhooks] postmark: account: expected a whole"),
    ("guard", {"complaint_warn": 0.01}, "[guard]: each warn line must be below its pause line"),
    ("guard", {"bounce_pause": 5}, "[guard] bounce_pause: expected a fraction"),
])
def test_errors_name_the_key(section, values, message):
    with pytest.raises(ConfigError) as info:
        from_mapping(_with(section, **values), source="f.toml", env={})
    assert message in str(info.value)
    assert str(info.value).startswith("f.toml: ")


@pytest.mark.parametrize("missing", [("smtp", "domain"), ("security", "secret_key"),
                                     ("database", "url"), ("smtp", "lmtp")])
def test_required_keys(missing):
    data = {k: dict(v) for k, v in MINIMAL.items()}
    del data[missing[0]][missing[1]]
    with pytest.raises(ConfigError, match=rf"\[{missing[0]}\] {missing[1]}: missing"):
        from_mapping(data, env={})


def test_outbound_and_replies():
    cfg = from_mapping({**MINIMAL, "outbound": {"relay": "[::1]:25", "retry_interval": "2m"},
                        "replies": {"markers": ["Answer SPAM to flag"]}}, env={})
    assert cfg.outbound.relay_address == ("::1", 25)
    assert cfg.outbound.retry_interval == 120
    assert cfg.replies.markers == ("answer spam to flag",)
    assert from_mapping(MINIMAL, env={}).outbound.relay_address is None
    assert from_mapping(MINIMAL, env={}).metrics.address is None
    listen = from_mapping({**MINIMAL, "metrics": {"listen": "[::1]:0"}}, env={}).metrics
    assert listen.address == ("::1", 0)


def test_environment_overrides_the_database_url():
    cfg = from_mapping(MINIMAL, env={config.ENV_DATABASE_URL: "postgresql+psycopg://u@h/db"})
    assert cfg.database.url == "postgresql+psycopg://u@h/db"


def test_config_file_from_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "sqlite:///a.db"\n[smtp]\nhost = "::1"\nport = 2525\n'
                    'domain = "a.example"\nlmtp = true\nmax_message_size = 4096\n'
                    '[security]\nsecret_key = "0123456789abcdefXYZ"\n')
    cfg = config.load(None, env={config.ENV_CONFIG: str(path)})
    assert cfg.smtp.lmtp is True and cfg.smtp.host == "::1" and cfg.path == path


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        config.load(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad, env={})


@pytest.mark.parametrize(("text", "seconds"), [(30, 30), ("30s", 30), ("5m", 300),
                                               ("36h", 129600), ("7d", 604800), ("6s", 6),
                                               ("250ms", 0.25), (1.5, 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "size"), [(4096, 4096), ("10MB", 10485760), ("512k", 524288),
                                            ("1G", 1073741824), ("100", 100)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_a_retired_key_with_its_old_default_still_starts_and_another_value_says_why():
    """Configs copied from an earlier example set ``cert_host_pattern`` to AWS's hosts,
    which is the default now: they keep working. Any other pattern names the new key."""
    from feedback_mta.config import ConfigError, from_mapping

    base = {"database": {"url": "sqlite:///x.sqlite3"},
            "smtp": {"domain": "fb.test", "lmtp": False, "max_message_size": "1MB",
                     "host": "127.0.0.1", "port": 2525},
            "security": {"secret_key": "k" * 32}}
    old = {**base, "webhooks": {"ses": {"cert_host_pattern": "sns.*.amazonaws.com"}}}
    assert from_mapping(old, env={}).webhooks.ses.cert_host == ""
    other = {**base, "webhooks": {"ses": {"cert_host_pattern": "*.example.com"}}}
    with pytest.raises(ConfigError, match=r"\[webhooks.ses\] cert_host_pattern: retired"):
        from_mapping(other, env={})
