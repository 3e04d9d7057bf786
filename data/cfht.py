"""CFHTLS ugriz FITS cubes for Lin, Fouchez & Pasquet (2021) via the CADC SODA cutouts.

``cfht-fits --manifest M --out ROOT``
    136x136 px stamps at 0.187"/px (``surveys.LIN_CFHT_SIZE``) from the CFHTLS Wide
    stacks at CADC, through the CADC SODA cutout service (one request per band)::

        GET {base}/caom2ops/sync?ID={uri}&CIRCLE={ra} {dec} {radius_deg}

    with ``--base-url`` default ``https://ws-cadc.canfar.net`` and
    ``uri = --uri-template.format(tile=..., band='g', BAND='G', id=...)``, default
    ``cadc:CFHTSG/{tile}.{BAND}.fits`` (CADC's documented example of this service is
    ``caom2ops/sync?id=cadc:CFHTSG/D2.I.fits&CIRCLE=150.570478+2.172356+0.01``, a
    MegaPipe CFHTLS stack). The manifest is a CSV with columns ``id, ra, dec, tile``
    (``tile``: the stack that holds the galaxy, as named in the artifact URI; any
    column named in the template is required). **The artifact names of the CFHTLS Wide
    MegaPipe stacks and the exact service URL could not be checked offline: a user with
    internet must check one galaxy by hand** (CADC's advanced search shows the
    artifact URI of each stack) and set ``--uri-template`` / ``--base-url`` if needed.
    The circle's radius covers the stamp's diagonal plus 1"; the returned cutout is then
    cut locally like the SDSS frames. Stacks use zero point 30, so pixels are
    multiplied by ``surveys.CFHT.flux_to_nmgy`` (1e-3); a header ``PHOTZP`` other than
    30 is reported as a failure.

Cubes, state and summary: ``data.pool``; how a stamp is cut: ``data.cube``.
"""
from __future__ import annotations

import argparse
import math
import string
from pathlib import Path

from data import surveys
from data.cube import (BANDS, CutoutError, check_stamp, cube_header, image_hdu, make_cube,
                       sample_nearest, stamp_wcs)
from data.http import FetchError, HttpClient
from data.pool import Job, add_common_args, make_client, read_manifest, report, run_jobs

CADC_BASE = "https://ws-cadc.canfar.net"
CADC_SYNC = "caom2ops/sync"
CFHT_URI_TEMPLATE = "cadc:CFHTSG/{tile}.{BAND}.fits"


def cfht_radius_deg(size: int = surveys.LIN_CFHT_SIZE,
                    pixscale: float = surveys.CFHT.pixel_scale) -> float:
    """SODA circle radius (deg) that covers the stamp's diagonal plus 1"."""
    return (size * pixscale / 2.0 * math.sqrt(2.0) + 1.0) / 3600.0


def template_fields(template: str) -> list[str]:
    """Manifest columns a URI template needs (its ``{names}`` other than band/BAND/id)."""
    names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    return [n for n in dict.fromkeys(names) if n not in ("band", "BAND", "id")]


def download_cfht(manifest: Path | str, out: Path | str, client: HttpClient, *,
                  uri_template: str = CFHT_URI_TEMPLATE, workers: int = 4,
                  progress: bool = True) -> dict:
    """Make ``ROOT/pool/cfht/<id>.fits`` for every manifest galaxy; returns the counts.

    Manifest columns: ``id, ra, dec`` plus the template's fields (default ``tile``).
    ``workers`` threads share ``client`` (and its rate limit), one galaxy each at a time.
    """
    survey, size = surveys.CFHT, surveys.LIN_CFHT_SIZE
    fields = template_fields(uri_template)
    df = read_manifest(manifest, fields)
    out = Path(out)
    radius = cfht_radius_deg(size, survey.pixel_scale)

    def make(job: Job):
        dst = stamp_wcs(job.ra, job.dec, size, survey.pixel_scale)
        stamps = {}
        for b in BANDS:
            uri = uri_template.format(band=b, BAND=b.upper(), id=job.gid,
                                      **{f: job.row[f] for f in fields})
            params = {"ID": uri, "CIRCLE": f"{job.ra:.7f} {job.dec:.7f} {radius:.6f}"}
            try:
                body = client.get(CADC_SYNC, params).content
            except FetchError as err:
                raise CutoutError(f"missing band {b}: {err.reason}") from None
            data, hdr, wcs = image_hdu(body, f"band {b} cutout")
            zp = hdr.get("PHOTZP")
            if zp is not None and abs(float(zp) - 30.0) > 0.01:
                raise CutoutError(f"band {b} cutout has PHOTZP={zp}, expected 30")
            try:
                stamps[b] = sample_nearest(data, wcs, dst, size) * survey.flux_to_nmgy
            except CutoutError as err:
                raise CutoutError(f"wrong shape: band {b} cutout: {err}") from None
            check_stamp(stamps[b], b, size)  # fail fast: no requests for later bands
        cube = make_cube(stamps, size)
        extra = {f.upper()[:8]: str(job.row[f]) for f in fields}
        return cube, cube_header(dst, survey, job.gid, job.ra, job.dec, extra)

    jobs = [Job(r["id"], float(r["ra"]), float(r["dec"]), r)
            for r in df.to_dict("records")]
    return run_jobs(jobs, survey, out, make, workers=workers, progress=progress)


# --------------------------------------------------------------------------- CLI
def add_parser(subparsers) -> argparse.ArgumentParser:
    """The ``cfht-fits`` subcommand of ``python -m data.download``."""
    p = subparsers.add_parser(
        "cfht-fits", help="CFHTLS ugriz 136x136 FITS cubes via the CADC SODA cutouts",
        description="CFHTLS Wide ugriz 136x136 px FITS cubes at 0.187\"/px "
                    "(nanomaggies) through CADC's caom2ops/sync cutout service. "
                    "Manifest CSV: id, ra, dec, tile (or the --uri-template fields). "
                    "Check the artifact URI of one galaxy by hand first.")
    add_common_args(p, CADC_BASE)
    p.add_argument("--uri-template", default=CFHT_URI_TEMPLATE,
                   help="artifact URI per band; fields {band} {BAND} {id} and manifest "
                        "columns (default %(default)s)")
    return p


def run(args) -> int:
    """0 if every galaxy is ok, 1 if some failed (see the summary)."""
    with make_client(args, CADC_BASE) as client:
        counts = download_cfht(args.manifest, args.out, client,
                               uri_template=args.uri_template,
                               workers=args.workers, progress=not args.no_progress)
    report("cfht", counts, args.out)
    return 1 if counts["failed"] else 0
