"""A polite, retrying HTTP client for the survey cutout services and catalogue downloads.

Every downloader in the project (``data.catalog``, ``data.download``, the FITS clients)
talks to the network through :class:`HttpClient`, which gives:

* one ``requests.Session`` with pooled keep-alive connections (``HTTPAdapter``);
* a ``User-Agent`` naming the project (:data:`USER_AGENT`);
* (connect, read) timeouts;
* retries with exponential backoff and *full jitter* (delay drawn uniformly from
  ``[0, min(max_backoff, backoff * 2**k)]`` before retry ``k + 1``) on connection errors,
  resets, timeouts, truncated bodies, HTTP 429 and 5xx. A ``Retry-After`` header
  (seconds or an HTTP date) on 429/503 is honoured instead, capped at ``max_backoff``.
  Other 4xx answers are final: no retry. The retrying is ``urllib3.util.Retry``'s,
  mounted through the session's ``HTTPAdapter`` (:class:`_Retry` only supplies the waits
  above); a body cut short while it is read (``stream=True``: after urllib3 has returned
  the response) is retried by :meth:`HttpClient._fetch` from the same budget of tries;
* a rate limit shared by every thread using the client: requests start at least
  ``1 / rate`` seconds apart;
* a Content-Type check (``expect=``): the Legacy Survey viewer answers many errors (e.g.
  an unknown layer) with a short text body and status 200, so a cutout is only accepted
  when its Content-Type starts with the expected type;
* confinement: ``get`` takes a path *relative to* ``base_url`` and refuses absolute URLs
  or paths that resolve outside it (``ValueError``), so a client cannot be tricked into
  talking to another host.

Failures that survive the retries raise :class:`FetchError`, whose ``reason`` is one
line ("HTTP 503 after 6 tries", "timeout after 6 tries", "text/plain body: no such
layer") suitable for a state file.

``retries`` counts retries *after* the first try: ``retries=5`` means up to 6 tries.
``sleep`` is injectable so tests run without real waiting.
"""
from __future__ import annotations

import email.utils
import logging
import posixpath
import random
import threading
import time
from datetime import timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from common.io import atomic_path

__version__ = "0.1"

#: Sent with every request, so survey operators can see who is downloading and why.
USER_AGENT = (f"galaxy-translation-repro/{__version__} (Pix2WGAN / Lin et al. galaxy "
              f"image translation reproduction; research downloads; "
              f"python-requests/{requests.__version__})")

#: Statuses worth retrying: rate limited, or a server-side problem.
RETRY_STATUS = frozenset({429}) | frozenset(range(500, 600))
#: Statuses whose Retry-After header is honoured.
RETRY_AFTER_STATUS = frozenset({429, 503})
#: Characters of an unexpected text body quoted in a FetchError reason.
SNIPPET = 80

log = logging.getLogger(__name__)


class FetchError(Exception):
    """A request that failed for good. ``reason`` is a one-line description; ``url``
    the URL asked for; ``status`` the last HTTP status (``None`` if none came back)."""

    def __init__(self, reason: str, url: str | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.url = url
        self.status = status


def _snippet(resp: requests.Response) -> str:
    """First line of a (text) body, shortened, for error messages."""
    try:
        text = resp.content[:400].decode("utf-8", "replace")
    except Exception:  # the body itself may be what failed
        return ""
    text = " ".join(text.split())
    return text[:SNIPPET] + ("..." if len(text) > SNIPPET else "")


def _error_kind(err: requests.RequestException) -> str:
    """Short name of a transport error, for reasons and logs."""
    text = str(err).lower()
    if isinstance(err, requests.Timeout) or "timed out" in text or "timeout" in text:
        return "timeout"
    if isinstance(err, requests.exceptions.ChunkedEncodingError) or \
            "incompleteread" in text or "incomplete" in text:
        return "truncated body"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text:
        return "connection reset"
    if isinstance(err, requests.ConnectionError):
        return "connection error"
    return type(err).__name__


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date);
    ``None`` if absent or unparsable. Dates in the past give 0."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class _Retry(Retry):
    """``urllib3`` Retry whose waits are the client's: full-jitter backoff, Retry-After
    capped at ``max_backoff``, the injectable ``sleep``, then the next rate-limit slot."""

    client: "HttpClient | None" = None

    def new(self, **kw) -> "_Retry":
        retry = super().new(**kw)
        retry.client = self.client
        return retry

    def sleep(self, response=None) -> None:
        c = self.client
        c._sleep(c._delay(len(self.history) - 1, response))
        c._throttle()


class _Adapter(HTTPAdapter):
    """``HTTPAdapter`` whose Retry is the calling thread's: each request gets the tries
    left of its budget (a truncated body spends one outside urllib3)."""

    def __init__(self, retry: _Retry, **kw):
        self._local = threading.local()
        super().__init__(max_retries=retry, **kw)

    @property
    def max_retries(self) -> Retry:
        return getattr(self._local, "retry", None) or self._default

    @max_retries.setter
    def max_retries(self, retry: Retry) -> None:
        self._default = retry


class HttpClient:
    """GET requests below one base URL, with retries, backoff, rate limit and checks.

    Args:
        base_url: ``scheme://host[:port][/prefix]``; every request goes below it.
        timeout: ``(connect, read)`` seconds.
        retries: retries after the first try (so ``retries + 1`` tries at most).
        backoff: base delay in seconds; retry ``k`` (from 0) waits a uniform random
            time in ``[0, min(max_backoff, backoff * 2**k)]`` (full jitter).
        max_backoff: cap of any single wait, Retry-After included.
        rate: most requests per second, across all threads (``0``/``None``: no limit).
        user_agent: the ``User-Agent`` header.
        session: a ``requests.Session`` to use (one is made if ``None``); the client
            mounts its pooled, retrying adapter on it.
        sleep: the function used to wait (tests inject a fake one).
    """

    def __init__(self, base_url: str, *, timeout=(5.0, 30.0), retries: int = 5,
                 backoff: float = 1.0, max_backoff: float = 60.0, rate: float = 4.0,
                 user_agent: str = USER_AGENT, session: requests.Session | None = None,
                 sleep=time.sleep):
        parts = urlsplit(str(base_url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base URL {base_url!r} must look like https://host[/path]")
        if parts.query or parts.fragment:
            raise ValueError(f"base URL {base_url!r} must not carry a query or fragment")
        if retries < 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must be >= 0")
        if rate is not None and rate < 0:
            raise ValueError(f"rate {rate} must be >= 0 requests/s")
        prefix = parts.path.rstrip("/") + "/"
        self.base_url = f"{parts.scheme}://{parts.netloc}{prefix}"
        self._prefix = prefix
        self.timeout = timeout
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.interval = 1.0 / rate if rate else 0.0
        self._sleep = sleep
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._next_start = 0.0
        # respect_retry_after_header=False: _Retry.sleep reads Retry-After itself (429,
        # 503 only: urllib3 would also retry a 413 that carries one).
        retry = _Retry(total=self.retries, status_forcelist=RETRY_STATUS,
                       allowed_methods={"GET"}, raise_on_status=False,
                       raise_on_redirect=False, respect_retry_after_header=False)
        retry.client = self
        self._adapter = _Adapter(retry, pool_connections=4, pool_maxsize=32)
        session = session if session is not None else requests.Session()
        session.mount("http://", self._adapter)
        session.mount("https://", self._adapter)
        session.headers["User-Agent"] = user_agent
        self.session = session

    # ------------------------------------------------------------------ URLs
    def url(self, path: str) -> str:
        """Absolute URL of ``path`` below ``base_url``; ``ValueError`` if ``path`` is an
        absolute URL or resolves outside the base (``..``, ``//host``, backslashes)."""
        path = str(path)
        parts = urlsplit(path)
        if parts.scheme or parts.netloc or path.startswith("//"):
            raise ValueError(f"refusing absolute URL {path!r}: give a path relative to "
                             f"{self.base_url}")
        if "\\" in path or parts.query or parts.fragment or any(c < " " for c in path):
            raise ValueError(f"refusing path {path!r}: pass query values as params")
        if ".." in path.split("/"):
            raise ValueError(f"refusing path {path!r}: '..' would leave {self.base_url}")
        joined = posixpath.normpath(posixpath.join(self._prefix, path.lstrip("/")))
        if path.endswith("/") and not joined.endswith("/"):
            joined += "/"
        if not (joined + "/").startswith(self._prefix) or "/../" in joined + "/":
            raise ValueError(f"refusing path {path!r}: it resolves outside "
                             f"{self.base_url}")
        base = self.base_url[: -len(self._prefix)]
        return base + quote(joined, safe="/:@!$&'()*+,;=-._~%")

    # ------------------------------------------------------------------ pacing
    def _throttle(self) -> None:
        """Wait for this request's start slot; slots are ``interval`` apart for all
        threads (each caller reserves the next free slot under the lock)."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.interval
        if start > now:
            self._sleep(start - now)

    def _delay(self, attempt: int, resp) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``resp``: the urllib3
        response that asked for it, or ``None``)."""
        if resp is not None and resp.status in RETRY_AFTER_STATUS:
            after = retry_after(resp.headers.get("Retry-After"))
            if after is not None:
                return min(self.max_backoff, after)
        cap = min(self.max_backoff, self.backoff * 2.0 ** attempt)
        return self._rng.uniform(0.0, cap)

    # ------------------------------------------------------------------ requests
    def get(self, path: str, params: dict | None = None, *,
            expect: str | None = None) -> requests.Response:
        """GET ``base_url + path`` and return the fully read 2xx response.

        Args:
            path: relative to ``base_url`` (see :meth:`url`).
            params: query parameters.
            expect: if given (``"image/jpeg"``, ``"application/fits"``, ``"text/csv"``),
                the response's Content-Type must start with it.

        Raises:
            FetchError: retries exhausted, a non-retryable status, or the wrong
                Content-Type (not retried: the service answered deliberately).
            ValueError: ``path`` points outside ``base_url``.
        """
        def consume(resp):
            _ = resp.content  # the whole body now: a truncated one raises here
            self._check_length(resp, len(resp.content))
            return resp
        return self._fetch(path, params, expect, consume)

    def download(self, path: str, dest: Path | str, params: dict | None = None, *,
                 expect: str | None = None, chunk: int = 1 << 20) -> Path:
        """Stream ``base_url + path`` into ``dest`` (atomically: a temporary file beside
        it, renamed when complete), with :meth:`get`'s retries and checks. Suits large
        files (catalogues) that should not sit in memory. Returns ``dest``."""
        def consume(resp):
            with atomic_path(dest) as tmp:
                size = 0
                with open(tmp, "wb") as f:
                    for block in resp.iter_content(chunk):
                        f.write(block)
                        size += len(block)
                self._check_length(resp, size)
            return Path(dest)
        return self._fetch(path, params, expect, consume)

    def _fetch(self, path, params, expect, consume):
        """One GET with its retries, shared by :meth:`get` and :meth:`download`:
        ``consume(resp)`` reads the body of a 2xx answer. urllib3 retries connection
        errors, timeouts and 429/5xx; a body cut short while ``consume`` reads it costs
        a try here, and the next request gets the tries left."""
        url = self.url(path)
        tries, used = self.retries + 1, 0
        while True:
            self._throttle()
            self._adapter._local.retry = self._adapter._default.new(total=tries - used - 1)
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout,
                                        stream=True)
            except requests.RequestException as err:  # urllib3 spent every try left
                log.debug("GET %s: %s", url, err)
                raise FetchError(f"{_error_kind(err)} after {tries} tries", url) from None
            finally:
                self._adapter._local.retry = None
            retried = getattr(resp.raw, "retries", None)
            used += 1 + (len(retried.history) if retried is not None else 0)
            status = resp.status_code
            try:
                if status < 300:
                    self._check_type(resp, url, expect)
                    return consume(resp)
                _ = resp.content
            except requests.RequestException as err:
                reason = _error_kind(err)
                log.debug("GET %s: %s (try %d/%d)", url, err, used, tries)
                resp.close()
            else:
                if status not in RETRY_STATUS:
                    raise FetchError(self._status_reason(resp), url, status)
                reason = f"HTTP {status}"
            if used >= tries:
                raise FetchError(f"{reason} after {tries} tries", url, status)
            self._sleep(self._delay(used - 1, None))

    @staticmethod
    def _check_length(resp: requests.Response, size: int) -> None:
        """Raise ``ChunkedEncodingError`` if fewer bytes came than Content-Length said
        (urllib3 normally catches this itself; kept as a second guard)."""
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and not resp.headers.get("Content-Encoding") and \
                size < int(declared):
            raise requests.exceptions.ChunkedEncodingError(
                f"incomplete body: {size} of {declared} bytes")

    @staticmethod
    def _status_reason(resp: requests.Response) -> str:
        text = _snippet(resp)
        return f"HTTP {resp.status_code}" + (f": {text}" if text else "")

    @staticmethod
    def _check_type(resp: requests.Response, url: str, expect: str | None) -> None:
        if expect is None:
            return
        ctype = resp.headers.get("Content-Type", "")
        if ctype.lower().startswith(expect.lower()):
            return
        kind = ctype.split(";")[0].strip() or "untyped"
        text = _snippet(resp) if kind.startswith("text") or kind == "untyped" else ""
        reason = f"{kind} body" + (f": {text}" if text else f", expected {expect}")
        raise FetchError(reason, url, resp.status_code)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
