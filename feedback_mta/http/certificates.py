"""SNS signing certificates for ``/hooks/ses``: fetched over HTTPS once and kept.

Apart from ``hooks`` so that what an app holds (``services``) can name it without importing
the endpoints.
"""

from __future__ import annotations

import threading

import httpx
from cryptography import x509

from feedback_mta.config import SesHookConfig


class CertificateUnavailable(Exception):
    """An SNS signing certificate could not be fetched: our problem, answered 503."""


class Certificates:
    """SNS signing certificates by URL, fetched over HTTPS once and kept (they change
    rarely, and each notification names one)."""

    LIMIT = 64

    def __init__(self, settings: SesHookConfig) -> None:
        self.settings = settings
        self._pem: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def client(self) -> httpx.Client:
        return httpx.Client(verify=self.settings.ca_file or True, timeout=10.0,
                            follow_redirects=False)

    def get(self, url: str) -> bytes:
        with self._lock:
            if url in self._pem:
                return self._pem[url]
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
