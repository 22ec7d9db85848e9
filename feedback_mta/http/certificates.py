"""SNS signing certificates for ``/hooks/ses``: fetched over HTTPS once and kept, and
fetched at most ``BURST`` at once and one per ``REFILL`` seconds after that (a token
bucket): a stream of messages naming new certificate URLs makes us fetch a handful, then
answers 503 with ``Retry-After`` and fetches nothing.

Apart from ``hooks`` so that what an app holds (``services``) can name it without importing
the endpoints.
"""

from __future__ import annotations

import math
import threading
import time

import httpx
from cryptography import x509

from feedback_mta.config import SesHookConfig


class CertificateUnavailable(Exception):
    """An SNS signing certificate could not be fetched: our problem, answered 503."""


class CertificatesBusy(CertificateUnavailable):
    """Over the fetch limit: nothing fetched; ``retry_after`` seconds until the next."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"certificate fetches over their limit; retry in {retry_after}s")
        self.retry_after = retry_after


class Certificates:
    """SNS signing certificates by URL, fetched over HTTPS once and kept (they change
    rarely, and each notification names one)."""

    LIMIT = 64
    #: Fetches at once (SNS signs with one certificate per region, changed yearly) ...
    BURST = 4
    #: ... and then one per this many seconds.
    REFILL = 15.0

    def __init__(self, settings: SesHookConfig) -> None:
        self.settings = settings
        self._pem: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._tokens = float(self.BURST)
        self._filled = time.monotonic()

    def _take(self) -> None:
        """One fetch's token; ``CertificatesBusy`` when there is none (call under the lock)."""
        now = time.monotonic()
        self._tokens = min(float(self.BURST), self._tokens + (now - self._filled) / self.REFILL)
        self._filled = now
        if self._tokens < 1.0:
            raise CertificatesBusy(max(1, math.ceil((1.0 - self._tokens) * self.REFILL)))
        self._tokens -= 1.0

    def client(self) -> httpx.Client:
        return httpx.Client(verify=self.settings.ca_file or True, timeout=10.0,
                            follow_redirects=False)

    def get(self, url: str) -> bytes:
        with self._lock:
            if url in self._pem:
                return self._pem[url]
            self._take()
        try:
            with self.client() as client:
                response = client.get(url)
                response.raise_for_status()
            x509.load_pem_x509_certificate(response.content)  # kept only if it is one
        except (httpx.HTTPError, ValueError) as exc:
            raise CertificateUnavailable(f"{url}: {type(exc).__name__}") from None
        with self._lock:
            if len(self._pem) >= self.LIMIT:
                self._pem.clear()
            self._pem[url] = response.content
        return response.content

    def confirm(self, url: str) -> int:
        """GET a SubscribeURL (the caller checked its host): SNS's confirmation."""
        try:
            with self.client() as client:
                return client.get(url).status_code
        except httpx.HTTPError as exc:
            raise CertificateUnavailable(f"{url}: {type(exc).__name__}") from None
