"""data.download legacy against the fake viewer: faults, blanks, resume after a kill."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from data import download, legacy
from data.legacy import LegacyConfig, classify, download_legacy, read_state
from data.http import USER_AGENT, HttpClient
from data.layout import REPO_ROOT
from data.render import blank_level, read_jpeg
from data.surveys import LUO_SURVEYS, get_survey
from tests.fake_servers import (Reply, Script, fake_server, galaxy_array,  # noqa: F401
                                grey_jpeg, jpeg_bytes, jpeg_reply, reset, slow,
                                text_reply, too_many, truncated, unavailable)

CUTOUT = "/viewer/jpeg-cutout"
LAYERS = {s: get_survey(s).layer for s in LUO_SURVEYS}
SURVEY_OF = {v: k for k, v in LAYERS.items()}
BODIES = [jpeg_bytes(galaxy_array(i)) for i in range(6)]
LEVEL = {s: blank_level(get_survey(s)) for s in LUO_SURVEYS}


def half_blank(survey: str) -> bytes:
    """HSC-style partial no-data: 3/4 of the image exactly at the blank grey."""
    arr = galaxy_array(9)
    arr[:, 32:] = LEVEL[survey]
    return jpeg_bytes(arr)


def make_manifest(path: Path, n: int) -> Path:
    ids = [f"J{i:04d}+01" for i in range(n)]
    pd.DataFrame({"id": ids, "ra": 150 + np.arange(n) * 0.01, "dec": 1.0 + 0 * np.arange(n),
                  "split": ["test" if i % 5 == 0 else "train" for i in range(n)],
                  "redshift": 0.05}).to_csv(path, index=False)
    return path


def gal_index(req) -> int:
    return int(round((float(req.query["ra"]) - 150) / 0.01))


def body_for(req) -> bytes:
    i = gal_index(req)
    return BODIES[(i + len(req.query["layer"])) % len(BODIES)]


def fault_plan(n: int):
    """~10 % of the files get a fault. Returns (script, expected) where expected maps
    (galaxy, survey) -> final status."""
    recoverable = [lambda s: unavailable(), lambda s: reset(),
                   lambda s: truncated(b"\xff\xd8" + b"x" * 3000),
                   lambda s: too_many(1), lambda s: unavailable(502)]
    scripts, expected = {}, {}
    for i in range(n):
        for k, s in enumerate(LUO_SURVEYS):
            key = (i, LAYERS[s])
            j = 3 * i + k
            if j % 10 != 3:
                continue
            kind = (j // 10) % 8
            if kind < 5:
                scripts[key] = [recoverable[kind](s), recoverable[kind](s), None]
                expected[(i, s)] = "ok"
            elif kind == 5:
                scripts[key] = [jpeg_reply(grey_jpeg(LEVEL[s]))]
                expected[(i, s)] = "blank"
            elif kind == 6:
                scripts[key] = [jpeg_reply(half_blank(s))]
                expected[(i, s)] = "blank"
            else:
                scripts[key] = [text_reply("no such layer")]
                expected[(i, s)] = "failed"
    return scripts, expected


class Viewer:
    """Fake jpeg-cutout endpoint: a scripted fault list per (galaxy, layer), then a
    galaxy JPEG; anything but the cutout path is a 404."""

    def __init__(self, scripts=None, delay=0.0):
        self.script = Script(scripts or {}, default=self.normal,
                             key=lambda r: (gal_index(r), r.query.get("layer")))
        self.delay = delay

    def normal(self, req):
        reply = jpeg_reply(body_for(req))
        return slow(reply, self.delay) if self.delay else reply

    def __call__(self, req):
        if req.path != CUTOUT:
            return Reply(404, {"Content-Type": "text/plain"}, b"not found")
        reply = self.script(req)
        return reply if reply is not None else self.normal(req)


def client_for(srv, **kw):
    kw = {"rate": 0, "retries": 3, "timeout": (2.0, 2.0), "sleep": lambda s: None, **kw}
    return HttpClient(srv.base_url, **kw)


def dataset(root: Path) -> dict:
    """Everything a dataset consists of: file bytes + manifest + final statuses."""
    files = {str(p.relative_to(root)): p.read_bytes()
             for p in sorted(root.rglob("*.jpg"))}
    state = {k: v[0] for k, v in read_state(root / legacy.STATE).items()}
    return {"files": files, "manifest": (root / "manifest.csv").read_text(),
            "state": state, "summary": (root / "download_summary.csv").read_text()}


def no_temporaries(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".tmp" in p.name]


def test_classify_blank_rules():
    for s in LUO_SURVEYS:
        assert classify(grey_jpeg(LEVEL[s]), s)[0] == "blank"
        st, why = classify(half_blank(s), s)
        assert st == "blank" and "of pixels at the blank level" in why
        assert classify(BODIES[0], s) == ("ok", "")
    assert classify(grey_jpeg(32), "sdss")[0] == "ok"  # 32 is not SDSS's blank 22
    assert classify(jpeg_bytes(galaxy_array(0, 64)), "hsc")[0] == "failed"
    assert classify(b"\xff\xd8garbage", "hsc")[0] == "failed"


def test_200_galaxies_with_faults(fake_server, tmp_path, monkeypatch):
    n = 200
    scripts, expected = fault_plan(n)
    assert 50 <= len(expected) <= 70  # ~10 % of 600 files
    srv = fake_server(Viewer(scripts))
    urls = []
    real_send = requests.Session.send
    monkeypatch.setattr(requests.Session, "send",
                        lambda self, req, **kw: urls.append(req.url) or
                        real_send(self, req, **kw))
    out = tmp_path / "ds"
    cfg = LegacyConfig(manifest=make_manifest(tmp_path / "m.csv", n), out=out, workers=8,
                       progress=False)
    res = download_legacy(cfg, client_for(srv))

    want = {(i, s): expected.get((i, s), "ok") for i in range(n) for s in LUO_SURVEYS}
    state = read_state(out / legacy.STATE)
    got = {(int(k[2][1:5]), k[1]): v[0] for k, v in state.items()}
    assert got == want
    reasons = {v[1] for v in state.values() if v[0] == "failed"}
    assert reasons == {"text/plain body: no such layer"}
    # files: exactly the ok ones, all whole 128x128x3 JPEGs; no temporaries
    jpgs = sorted(out.rglob("*.jpg"))
    assert len(jpgs) == sum(v == "ok" for v in want.values())
    for p in jpgs:
        assert read_jpeg(p).shape == (128, 128, 3)
    assert no_temporaries(out)
    # manifest: the galaxies whose three members are ok
    complete = {i for i in range(n) if all(want[(i, s)] == "ok" for s in LUO_SURVEYS)}
    m = pd.read_csv(out / "manifest.csv", dtype={"id": str})
    assert sorted(int(x[1:5]) for x in m["id"]) == sorted(complete)
    assert res["complete"] == len(complete) and res["failed"] == sum(
        v == "failed" for v in want.values())
    table = pd.read_csv(out / "download_summary.csv").set_index("survey")
    for s in LUO_SURVEYS:
        for st in ("ok", "blank", "failed"):
            assert table.loc[s, st] == sum(v == st for (i, t), v in want.items() if t == s)
    assert "| survey |" in (out / "download_summary.md").read_text()
    n_recoverable = sum(v == "ok" for v in expected.values())
    assert srv.count() == 3 * n + 2 * n_recoverable  # two faults, then the JPEG
    # requests: only the cutout endpoint of the base URL, with the expected query
    assert urls and all(u.startswith(srv.base_url + CUTOUT + "?") for u in urls)
    assert all(r.headers["User-Agent"] == USER_AGENT for r in srv.requests)
    q = srv.requests[0].query
    assert set(q) == {"ra", "dec", "size", "layer", "pixscale", "bands"}
    assert q["size"] == "128" and q["pixscale"] == "0.168"
    by_layer = {r.query["layer"]: r.query["bands"] for r in srv.requests}
    assert by_layer == {"sdss": "gri", "ls-dr10-grz": "grz", "hsc-dr3": "gri"}

    # a rerun asks again only for the failed files, and they are still failed
    before = srv.count()
    res2 = download_legacy(cfg, client_for(srv))
    assert srv.count() - before == res["failed"]
    assert res2["complete"] == res["complete"]


def test_layer_flags_and_timeout(fake_server, tmp_path):
    srv = fake_server(Viewer({(0, "ls-dr9"): [slow(jpeg_reply(BODIES[0]), 1.0)]}))
    out = tmp_path / "ds"
    argv = ["legacy", "--manifest", str(make_manifest(tmp_path / "m.csv", 2)), "--out",
            str(out), "--base-url", srv.base_url, "--decals-layer", "ls-dr9",
            "--hsc-bands", "grz", "--rate", "0", "--retries", "1", "--backoff", "0",
            "--timeout", "0.2", "--no-progress"]
    assert download.main(argv) == 1  # a file failed
    state = read_state(out / legacy.STATE)
    assert state[("test", "decals", "J0000+01")] == ("failed", "timeout after 2 tries")
    assert {r.query["layer"] for r in srv.requests} == {"sdss", "ls-dr9", "hsc-dr3"}
    assert {r.query["bands"] for r in srv.requests if r.query["layer"] == "hsc-dr3"} \
        == {"grz"}
    # other settings into the same folder: refused
    assert download.main(argv[:7] + ["--rate", "0", "--no-progress"]) == 2


def test_interrupt_then_resume_equals_uninterrupted(fake_server, tmp_path):
    n = 30
    scripts, _ = fault_plan(n)
    deterministic = {k: v for k, v in scripts.items() if len(v) == 1}
    srv = fake_server(Viewer(deterministic))
    manifest = make_manifest(tmp_path / "m.csv", n)
    ref = tmp_path / "ref"
    download_legacy(LegacyConfig(manifest=manifest, out=ref, workers=4, progress=False),
                    client_for(srv))

    class CtrlC(HttpClient):
        calls = 0

        def get(self, *a, **kw):
            CtrlC.calls += 1
            if CtrlC.calls == 40:
                raise KeyboardInterrupt
            return super().get(*a, **kw)

    out = tmp_path / "ds"
    cfg = LegacyConfig(manifest=manifest, out=out, workers=4, progress=False)
    c = CtrlC(srv.base_url, rate=0, sleep=lambda s: None)
    res = download_legacy(cfg, c)
    assert res["interrupted"] and not (out / "manifest.csv").exists()
    assert 20 < len(list(out.rglob("*.jpg"))) < 3 * n
    download_legacy(cfg, client_for(srv))
    assert dataset(out) == dataset(ref)


def test_sigkill_then_rerun_equals_uninterrupted(fake_server, tmp_path):
    n = 40
    scripts, _ = fault_plan(n)
    deterministic = {k: v for k, v in scripts.items() if len(v) == 1}
    srv = fake_server(Viewer(deterministic, delay=0.02))
    manifest = make_manifest(tmp_path / "m.csv", n)
    ref = tmp_path / "ref"
    download_legacy(LegacyConfig(manifest=manifest, out=ref, workers=8, progress=False),
                    client_for(srv))

    out = tmp_path / "ds"
    argv = ["legacy", "--manifest", str(manifest), "--out", str(out), "--base-url",
            srv.base_url, "--workers", "2", "--rate", "0", "--backoff", "0",
            "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "data.download", *argv],
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(list(out.rglob("*.jpg"))) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = list(out.rglob("*.jpg"))
    assert 30 <= len(partial) < 3 * n, "the run ended before it could be killed"
    for p in partial:  # every file under a real name is whole
        assert read_jpeg(p).shape == (128, 128, 3)
    assert not (out / "manifest.csv").exists()
    assert download.main(argv) == 1  # the 'no such layer' files stay failed
    assert no_temporaries(out)
    assert dataset(out) == dataset(ref)


def test_bad_manifest(tmp_path):
    bad = tmp_path / "m.csv"
    pd.DataFrame({"id": ["../x"], "ra": [1.0], "dec": [0.0], "split": ["train"]}).to_csv(
        bad, index=False)
    with pytest.raises(ValueError, match="unsafe galaxy id"):
        download_legacy(LegacyConfig(manifest=bad, out=tmp_path / "o", progress=False))
    pd.DataFrame({"id": ["a"], "ra": [1.0], "split": ["train"]}).to_csv(bad, index=False)
    assert download.main(["legacy", "--manifest", str(bad), "--out",
                          str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_state_survives_a_cut_line(tmp_path):
    path = tmp_path / legacy.STATE
    path.write_text("split,survey,id,status,reason,time\n"
                    "train,sdss,a,ok,,t\ntrain,hsc,a,blank,grey,t\ntrain,decals,a,o")
    assert read_state(path) == {("train", "sdss", "a"): ("ok", ""),
                                ("train", "hsc", "a"): ("blank", "grey")}
    log = legacy.StateLog(path)
    log.add(legacy.Task("train", "decals", "a", 1.0, 2.0), "failed", "HTTP 503\nx")
    log.close()
    assert read_state(path)[("train", "decals", "a")] == ("failed", "HTTP 503 x")
