"""STARTTLS (RFC 3207): the server's TLS context, from ``[smtp] tls_cert`` and ``tls_key``.

Certificates are renewed on disk (certbot, an internal CA) while the server runs, so the
files are looked at again at most once a minute and loaded into the same context when they
changed: new sessions get the new certificate, no restart needed. A pair that no longer
loads (half-written during a renewal) keeps the previous one and is logged.
"""

from __future__ import annotations

import os
import ssl
import time

from feedback_mta import logs

log = logs.get(__name__)


class TlsError(Exception):
    """The certificate or key could not be loaded; the message names the files."""


class TlsFiles:
    RECHECK = 60.0

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp = self._mtimes()
        self._load()
        self._checked = time.monotonic()

    def _mtimes(self) -> tuple[float, float]:
        try:
            return os.stat(self.cert).st_mtime, os.stat(self.key).st_mtime
        except OSError as exc:
            raise TlsError(f"cannot read {exc.filename} ([smtp] tls_cert, tls_key): "
                           f"{exc.strerror}") from None

    def _load(self) -> None:
        try:
            self.ctx.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot load {self.cert} / {self.key} ([smtp] tls_cert, tls_key): "
                           f"{getattr(exc, 'strerror', None) or exc}") from None

    def context(self) -> ssl.SSLContext:
        """The context for a new session (reloaded first if the files changed)."""
        now = time.monotonic()
        if now - self._checked >= self.RECHECK:
            self._checked = now
            self.reload_if_changed()
        return self.ctx

    def reload_if_changed(self) -> bool:
        try:
            stamp = self._mtimes()
            if stamp == self._stamp:
                return False
            self._load()
        except TlsError as exc:
            log.error("tls.reload_failed", error=str(exc))
            return False
        self._stamp = stamp
        log.info("tls.reloaded", cert=self.cert)
        return True
