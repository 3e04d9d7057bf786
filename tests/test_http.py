"""data.http.HttpClient against the in-process fake server: every fault kind."""
from __future__ import annotations

import email.utils
import threading
import time

import pytest

from data.http import USER_AGENT, FetchError, HttpClient, retry_after
from tests.fake_servers import (Reply, Script, fake_server, galaxy_jpeg,  # noqa: F401
                                jpeg_reply, reset, slow, text_reply, too_many, truncated,
                                unavailable)

PATH = "/viewer/jpeg-cutout"
BODY = galaxy_jpeg(1)


class Sleeps(list):
    """Injected ``sleep``: records the waits instead of waiting."""

    def __call__(self, seconds):
        self.append(seconds)


def client(srv, **kw) -> tuple[HttpClient, Sleeps]:
    sleeps = Sleeps()
    kw = {"rate": 0, "sleep": sleeps, "timeout": (1.0, 1.0), **kw}
    return HttpClient(srv.base_url, **kw), sleeps


def scripted(fake_server, *faults):
    return fake_server(Script({PATH: [*faults, jpeg_reply(BODY)]}))


@pytest.mark.parametrize("fault", [unavailable(), unavailable(500), reset(),
                                   truncated(BODY), too_many(0)],
                         ids=["503", "500", "reset", "truncated", "429"])
def test_retry_then_ok(fake_server, fault):
    srv = scripted(fake_server, fault, fault)
    c, sleeps = client(srv)
    resp = c.get(PATH, {"ra": 1.5}, expect="image/jpeg")
    assert resp.content == BODY
    assert srv.count(PATH) == 3 and len(sleeps) == 2
    assert all(r.query == {"ra": "1.5"} for r in srv.requests)


def test_timeout_then_ok(fake_server):
    srv = scripted(fake_server, slow(jpeg_reply(BODY), 1.0))
    c, sleeps = client(srv, timeout=(1.0, 0.2))
    assert c.get(PATH, expect="image/jpeg").content == BODY
    assert srv.count(PATH) == 2


@pytest.mark.parametrize("fault,reason", [
    (unavailable(), "HTTP 503 after 3 tries"),
    (reset(), "connection reset after 3 tries"),
    (truncated(BODY, 0.3), "truncated body after 3 tries"),
    (slow(jpeg_reply(BODY), 1.0), "timeout after 3 tries"),
])
def test_gives_up_with_one_line_reason(fake_server, fault, reason):
    srv = fake_server(Script({PATH: [fault]}))
    c, sleeps = client(srv, retries=2, timeout=(1.0, 0.2))
    with pytest.raises(FetchError) as err:
        c.get(PATH, expect="image/jpeg")
    assert err.value.reason == reason and "\n" not in str(err.value)
    assert srv.count(PATH) == 3 and len(sleeps) == 2


def test_text_200_is_not_retried(fake_server):
    srv = fake_server(Script({PATH: [text_reply("no such layer")]}))
    c, sleeps = client(srv)
    with pytest.raises(FetchError) as err:
        c.get(PATH, {"layer": "nope"}, expect="image/jpeg")
    assert err.value.reason == "text/plain body: no such layer"
    assert srv.count() == 1 and sleeps == []


def test_other_4xx_not_retried(fake_server):
    srv = fake_server(Script({PATH: [text_reply("Need ra,dec keywords", 400)]}))
    c, sleeps = client(srv)
    with pytest.raises(FetchError) as err:
        c.get(PATH)
    assert err.value.status == 400 and err.value.reason == "HTTP 400: Need ra,dec keywords"
    assert srv.count() == 1 and sleeps == []


def test_429_honours_retry_after_seconds_and_date(fake_server):
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    srv = scripted(fake_server, too_many(7), too_many(date), too_many(999))
    c, sleeps = client(srv, max_backoff=60)
    assert c.get(PATH).content == BODY
    assert sleeps[0] == 7
    assert 27 <= sleeps[1] <= 30.5
    assert sleeps[2] == 60  # capped at max_backoff


def test_backoff_is_exponential_full_jitter(fake_server):
    srv = fake_server(Script({PATH: [unavailable()]}))
    c, sleeps = client(srv, retries=4, backoff=0.5, max_backoff=3.0)
    c._rng.uniform = lambda lo, hi: hi  # the top of each jitter window
    with pytest.raises(FetchError):
        c.get(PATH)
    assert sleeps == [0.5, 1.0, 2.0, 3.0]


def test_retry_after_parser():
    assert retry_after("12") == 12 and retry_after(None) is None
    assert retry_after("garbage") is None
    assert retry_after(email.utils.formatdate(0, usegmt=True)) == 0


def test_user_agent_and_confinement(fake_server):
    srv = fake_server(lambda req: jpeg_reply(BODY))
    c, _ = client(srv)
    c.get("viewer/x")
    c.get("/viewer/y")
    assert [r.path for r in srv.requests] == ["/viewer/x", "/viewer/y"]
    assert all(r.headers["User-Agent"] == USER_AGENT for r in srv.requests)
    assert "galaxy-translation-repro" in USER_AGENT
    for bad in ("http://example.com/x", "//example.com/x", "https:x", "../x",
                "a/../../x", "a\\b", "x?layer=sdss"):
        with pytest.raises(ValueError):
            c.get(bad)
    assert srv.count() == 2


def test_prefix_base_url(fake_server):
    srv = fake_server(lambda req: jpeg_reply(BODY))
    c = HttpClient(srv.base_url + "/api/v1/", rate=0)
    assert c.url("files/a.csv") == srv.base_url + "/api/v1/files/a.csv"
    c.get("files/a.csv")
    assert srv.requests[0].path == "/api/v1/files/a.csv"
    with pytest.raises(ValueError):
        c.url("../v2/x")


def test_bad_base_url():
    for bad in ("ftp://x", "www.legacysurvey.org", "https://x/?q=1"):
        with pytest.raises(ValueError):
            HttpClient(bad)


def test_rate_limit_shared_by_threads(fake_server):
    srv = fake_server(lambda req: jpeg_reply(BODY))
    c = HttpClient(srv.base_url, rate=50.0)
    t0 = time.monotonic()
    threads = [threading.Thread(target=lambda: [c.get(PATH) for _ in range(3)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 12 requests at 50/s: slots 20 ms apart, so the last starts >= 220 ms after the first.
    assert time.monotonic() - t0 >= 0.21
    assert srv.count() == 12


def test_download_streams_atomically(fake_server, tmp_path):
    big = bytes(range(256)) * 4096  # 1 MiB
    srv = fake_server(Script({"/f.csv": [truncated(big, 0.5, "text/csv"),
                                         Reply(200, {"Content-Type": "text/csv"}, big)]}))
    c, sleeps = client(srv)
    dest = tmp_path / "cache" / "f.csv"
    assert c.download("f.csv", dest, expect="text/csv", chunk=4096) == dest
    assert dest.read_bytes() == big and srv.count() == 2
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.csv"]  # no temp left


def test_download_failure_leaves_nothing(fake_server, tmp_path):
    srv = fake_server(Script({"/f.csv": [text_reply("gone")]}))
    c, _ = client(srv)
    with pytest.raises(FetchError):
        c.download("f.csv", tmp_path / "f.csv", expect="text/csv")
    assert list(tmp_path.iterdir()) == []
