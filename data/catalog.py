"""Build the Luo et al. (§2.4) galaxy sample: catalogue -> cuts -> footprint -> split.

Input, one of:

* the Galaxy Zoo DECaLS volunteer catalogue (Walmsley et al. 2022; Zenodo DOI
  10.5281/zenodo.4573248, file ``gz_decals_volunteers_5.csv``, ~146 MB), downloaded once
  with :class:`data.http.HttpClient` from :data:`GZ_DECALS_URL` (``--catalog-url``) into
  ``data_root()/cache`` (``--cache-dir``). We know no published checksum for it, so the
  download is checked by size (> 1 MB, fully received) and by parsing it (ra/dec
  columns present); the sha256 we compute is recorded in a sidecar
  ``<file>.sha256.json`` and checked on every later use of the cached copy;
* ``--input FILE``: any CSV or FITS table with ``ra`` and ``dec`` columns (degrees,
  column names case-insensitive; e.g. the NASA-Sloan Atlas).

Cuts (paper defaults; a cut whose column is absent is skipped with a warning):

* ``--max-rmag 17.77``: SDSS spectroscopic targets. Column: the first of ``mag_r``,
  ``petro_mag_r``, ``petromag_r`` found, else ``sersic_nmgy_r`` converted with
  ``22.5 - 2.5 log10(flux)`` (GZ DECaLS carries the NSA Sersic r flux, not the Petrosian
  magnitude of the SDSS target selection: a close but not identical proxy);
* ``--max-z 0.15``: column ``redshift`` or ``z``;
* ``--min-petro-theta 3.0``: Petrosian radius in arcsec, column ``petro_theta`` or
  ``petrotheta``.

Rows with NaN in a cut's column fail that cut. Footprint: inside one of the coarse
HSC-PDR3-Wide boxes :data:`data.surveys.HSC_WIDE_BOXES` (GZ DECaLS galaxies are all in
SDSS and DECaLS already); blank cutouts are rejected later, at download time.

Ids: ``--id-column`` (default: ``iauname``, else ``id``/``objid``/``nsaid``, else made
from the coordinates as ``J<ra:.5f><dec:+.5f>``), sanitised by :func:`safe_id`. Bad
input is an error, never silently dropped: missing ra/dec columns, NaN or out-of-range
coordinates (ra outside [0, 360), dec outside [-90, 90]) and duplicate ids anywhere in
the input (after sanitising; ``--drop-duplicates`` keeps the first row of each instead).

Split: the selected galaxies, sorted by id (so the row order of the input does not
matter), are shuffled with ``--seed``; the first ``--n-train`` are ``train``, the next
``--n-test`` ``test``. If fewer galaxies pass than ``n_train + n_test``, all are used and
split in the same train:test proportion, with a warning (the summary says so).

Output (only under ``--out``): ``DIR/manifest.csv`` (id, ra, dec, split + the catalogue
columns used) and ``DIR/catalog.json`` (input, checksum, cuts, counts), both atomic.

CLI: ``python -m data.catalog --out DIR [--input FILE] [--max-rmag 17.77] ...``.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from common.cli import Parser, non_negative_int
from common.errors import run_cli
from common.io import atomic_write, atomic_write_text, file_sha256
from common.errors import DataError
from data.http import FetchError, HttpClient
from data.layout import check_id, data_root, manifest_path
from data.surveys import HSC_WIDE_BOXES, NMGY_ZEROPOINT

#: Galaxy Zoo DECaLS volunteer votes, DR5 (Walmsley et al. 2022), on Zenodo.
GZ_DECALS_URL = ("https://zenodo.org/records/4573248/files/"
                 "gz_decals_volunteers_5.csv?download=1")
#: A downloaded catalogue smaller than this is an error page, not the catalogue.
MIN_CATALOG_BYTES = 1_000_000
CATALOG_INFO = "catalog.json"

MAG_COLUMNS = ("mag_r", "petro_mag_r", "petromag_r")
FLUX_COLUMNS = ("sersic_nmgy_r",)
Z_COLUMNS = ("redshift", "z")
PETRO_COLUMNS = ("petro_theta", "petrotheta")
ID_COLUMNS = ("iauname", "id", "objid", "nsaid")
#: Catalogue columns copied into the manifest when present.
KEEP_COLUMNS = ("iauname", "redshift", "z", "petro_theta", "petro_th50", "mag_r",
                "sersic_nmgy_r", "elpetro_absmag_r")


@dataclass
class CatalogConfig:
    """Settings of :func:`build_catalog` (paper defaults, Luo et al. §2.4)."""
    out: Path
    input: Path | None = None             # None: download GZ DECaLS
    catalog_url: str = GZ_DECALS_URL
    cache_dir: Path | None = None         # None: data_root()/cache
    max_rmag: float = 17.77               # SDSS spectroscopic targets, m_r < 17.77
    max_z: float = 0.15                   # z <= 0.15
    min_petro_theta: float = 3.0          # NSA Petrosian radius >= 3"
    n_train: int = 15000
    n_test: int = 2000
    seed: int = 0
    id_column: str | None = None
    drop_duplicates: bool = False


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------- ids
def safe_id(raw) -> str:
    """Catalogue name -> file-safe id (passes :func:`data.layout.check_id`).

    Rule: strip surrounding blanks; every character outside ``A-Za-z0-9+-._`` becomes
    ``_``; every run of two or more dots becomes ``_`` (no ``..``); leading characters
    other than a letter or digit are dropped; the result is cut to 128 characters.
    ``"J0946 51.4/-01"`` -> ``"J0946_51.4_-01"``, ``"../x"`` -> ``"x"``. An id with
    nothing left is an error.
    """
    text = str(raw).strip()
    text = re.sub(r"[^A-Za-z0-9+\-._]", "_", text)
    text = re.sub(r"\.{2,}", "_", text)
    text = re.sub(r"^[^A-Za-z0-9]+", "", text)[:128]
    if not text:
        raise DataError(f"catalogue id {raw!r} has no usable characters")
    return check_id(text)


# ---------------------------------------------------------------------------- input
def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or FITS table; column names lower-cased (must stay unique)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"catalogue {path} does not exist")
    name = path.name.lower()
    try:
        if name.endswith((".fits", ".fit", ".fits.gz", ".fts")):
            from astropy.table import Table
            table = Table.read(path)
            flat = [c for c in table.colnames if table[c].ndim <= 1]
            df = table[flat].to_pandas()
        else:
            df = pd.read_csv(path, low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read it as a CSV or FITS table "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    lower = [str(c).strip().lower() for c in df.columns]
    dupes = sorted({c for c in lower if lower.count(c) > 1})
    if dupes:
        raise DataError(f"{path}: columns {dupes} differ only in case")
    df.columns = lower
    for col in df.columns:  # FITS strings arrive as bytes
        if df[col].dtype == object and len(df) and isinstance(df[col].iloc[0], bytes):
            df[col] = df[col].str.decode("utf-8").str.strip()
    return df


def fetch_catalog(url: str, cache_dir: Path, client: HttpClient | None = None, *,
                  min_bytes: int = MIN_CATALOG_BYTES) -> Path:
    """Download ``url`` into ``cache_dir`` once; later calls reuse the cached copy if
    its sha256 matches the sidecar. A download under ``min_bytes`` or without ra/dec
    columns is deleted and reported. Returns the local path."""
    parts = urlsplit(url)
    name = Path(parts.path).name or "catalog.csv"
    dest = Path(cache_dir) / name
    sidecar = dest.with_name(dest.name + ".sha256.json")
    if dest.is_file() and sidecar.is_file():
        try:
            known = json.loads(sidecar.read_text())
        except ValueError:
            known = {}
        if known.get("sha256") == file_sha256(dest) and known.get("url") == url:
            return dest
        warn(f"cached {dest} does not match {sidecar}: downloading it again")
    if client is None:
        client = HttpClient(f"{parts.scheme}://{parts.netloc}", timeout=(10.0, 120.0),
                            rate=1.0)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    try:
        client.download(parts.path, dest, params or None)
    except FetchError as e:
        raise DataError(f"cannot download the catalogue {url}: {e.reason}") from None
    size = dest.stat().st_size
    try:
        if size < min_bytes:
            raise DataError(f"{url} gave only {size} bytes: not the catalogue")
        head = read_table_head(dest)
        if not {"ra", "dec"} <= set(head.columns):
            raise DataError(f"{url}: the download has no ra/dec columns")
    except DataError:
        dest.unlink()
        raise
    atomic_write_text(sidecar, json.dumps({"url": url, "size": size,
                                           "sha256": file_sha256(dest)}, indent=1) + "\n")
    return dest


def read_table_head(path: Path) -> pd.DataFrame:
    """The first rows of a CSV (lower-cased columns), to check a download parses."""
    try:
        df = pd.read_csv(path, nrows=5)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a CSV table ({e})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    return df


def _first(df: pd.DataFrame, names) -> str | None:
    return next((c for c in names if c in df.columns), None)


# ---------------------------------------------------------------------------- steps
def check_coords(df: pd.DataFrame, where: str) -> None:
    """``DataError`` unless ra/dec exist, are numeric, finite and in range."""
    missing = [c for c in ("ra", "dec") if c not in df.columns]
    if missing:
        shown = ", ".join(list(df.columns)[:12])
        raise DataError(f"{where} has no {'/'.join(missing)} column (columns: {shown})")
    for col, lo, hi in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(vals) | (vals < lo) | (vals > hi) | \
            ((vals == hi) if col == "ra" else False)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where}: {int(bad.sum())} row(s) with {col} missing or "
                            f"outside [{lo:g}, {hi:g}{')' if col == 'ra' else ']'}, first "
                            f"row {i + 1}: {col}={df[col].iloc[i]}")
        df[col] = vals


def in_footprint(ra, dec, boxes=HSC_WIDE_BOXES) -> np.ndarray:
    """Boolean mask: inside any ``(name, ra_min, ra_max, dec_min, dec_max)`` box."""
    ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
    mask = np.zeros(ra.shape, bool)
    for _, r0, r1, d0, d1 in boxes:
        mask |= (ra >= r0) & (ra <= r1) & (dec >= d0) & (dec <= d1)
    return mask


def r_magnitude(df: pd.DataFrame) -> tuple[pd.Series | None, str | None]:
    """The r magnitude used by the ``--max-rmag`` cut and the column it came from."""
    col = _first(df, MAG_COLUMNS)
    if col:
        return pd.to_numeric(df[col], errors="coerce"), col
    col = _first(df, FLUX_COLUMNS)
    if col:
        flux = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.where(flux > 0, NMGY_ZEROPOINT - 2.5 * np.log10(flux), np.nan)
        return pd.Series(mag, index=df.index), col
    return None, None


def make_ids(df: pd.DataFrame, id_column: str | None, where: str) -> pd.Series:
    """Sanitised ids (see :func:`safe_id`) from the id column or the coordinates."""
    col = id_column.lower() if id_column else _first(df, ID_COLUMNS)
    if id_column and col not in df.columns:
        raise DataError(f"{where} has no id column {id_column!r}")
    if col is None:
        raw = [f"J{ra:.5f}{dec:+.5f}" for ra, dec in zip(df["ra"], df["dec"])]
    else:
        if df[col].isna().any():
            i = int(np.flatnonzero(df[col].isna().to_numpy())[0])
            raise DataError(f"{where}: id column {col!r} is empty in row {i + 1}")
        raw = df[col].astype(str).tolist()
    return pd.Series([safe_id(r) for r in raw], index=df.index)


def split_sample(ids: pd.Series, n_train: int, n_test: int, seed: int) -> pd.Series:
    """Seeded random split -> Series of ``train``/``test`` (``None`` for unused)."""
    order = np.argsort(ids.to_numpy(), kind="stable")
    perm = order[np.random.default_rng(seed).permutation(len(order))]
    n = len(ids)
    if n < n_train + n_test:
        n_test = int(round(n * n_test / max(1, n_train + n_test)))
        n_train = n - n_test
        warn(f"only {n} galaxies pass the cuts and footprint: using all of them, "
             f"{n_train} train + {n_test} test")
    split = pd.Series([None] * n, index=ids.index, dtype=object)
    split.iloc[perm[:n_train]] = "train"
    split.iloc[perm[n_train:n_train + n_test]] = "test"
    return split


def build_catalog(cfg: CatalogConfig, client: HttpClient | None = None) -> pd.DataFrame:
    """Build and write ``cfg.out/manifest.csv``; returns the manifest."""
    if cfg.n_train < 0 or cfg.n_test < 0 or cfg.n_train + cfg.n_test == 0:
        raise ValueError(f"--n-train {cfg.n_train} / --n-test {cfg.n_test}: need at "
                         "least one galaxy and no negative count")
    if cfg.input is not None:
        path, url = Path(cfg.input), None
    else:
        url = cfg.catalog_url
        path = fetch_catalog(url, cfg.cache_dir or data_root() / "cache", client)
    where = str(path)
    df = read_table(path)
    counts = {"input": len(df)}
    check_coords(df, where)
    df["id"] = make_ids(df, cfg.id_column, where)
    dup = df["id"].duplicated(keep="first")
    if dup.any():
        if not cfg.drop_duplicates:
            first = df["id"][dup].iloc[0]
            raise DataError(f"{where}: {int(dup.sum())} duplicate id(s) after sanitising "
                            f"(first: {first!r}); use --drop-duplicates to keep the "
                            "first row of each")
        df = df[~dup].reset_index(drop=True)
        counts["after dropping duplicate ids"] = len(df)

    keep = np.ones(len(df), bool)
    mag, mag_col = r_magnitude(df)
    cuts = [("--max-rmag", mag, mag_col, lambda v: v < cfg.max_rmag),
            ("--max-z", *_col(df, Z_COLUMNS), lambda v: v <= cfg.max_z),
            ("--min-petro-theta", *_col(df, PETRO_COLUMNS),
             lambda v: v >= cfg.min_petro_theta)]
    used = {}
    for flag, values, col, test in cuts:
        if values is None:
            warn(f"{where} has no column for the {flag} cut: cut skipped")
            continue
        ok = test(values.to_numpy(np.float64))  # NaN fails every comparison
        keep &= ok
        used[flag] = col
        counts[f"after {flag}"] = int(keep.sum())
    keep &= in_footprint(df["ra"], df["dec"])
    counts["in HSC-Wide boxes"] = int(keep.sum())
    sel = df[keep].copy()
    if mag_col is not None and "mag_r" not in sel.columns:
        sel["mag_r"] = mag[keep]

    if sel.empty:
        raise DataError(f"{where}: no galaxy passes the cuts and lies in the HSC-Wide "
                        "boxes")
    sel["split"] = split_sample(sel["id"], cfg.n_train, cfg.n_test, cfg.seed)
    sel = sel[sel["split"].notna()]
    extra = [c for c in KEEP_COLUMNS if c in sel.columns and c not in ("id",)]
    out = sel[["id", "ra", "dec", "split", *extra]].sort_values(["split", "id"],
                                                                 ascending=[False, True])
    out = out.reset_index(drop=True)
    counts.update(train=int((out["split"] == "train").sum()),
                  test=int((out["split"] == "test").sum()))

    outdir = Path(cfg.out)
    atomic_write(manifest_path(outdir), lambda tmp: out.to_csv(tmp, index=False))
    info = {"input": str(path), "url": url, "sha256": file_sha256(path),
            "cut_columns": used, "counts": counts,
            "config": {k: str(v) if isinstance(v, Path) else v
                       for k, v in asdict(cfg).items()}}
    atomic_write_text(outdir / CATALOG_INFO, json.dumps(info, indent=1) + "\n")
    print(" -> ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    print(f"wrote {manifest_path(outdir)}: {counts['train']} train + {counts['test']} "
          "test galaxies", file=sys.stderr)
    return out


def _col(df: pd.DataFrame, names) -> tuple[pd.Series | None, str | None]:
    col = _first(df, names)
    if col is None:
        return None, None
    return pd.to_numeric(df[col], errors="coerce"), col


# ---------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> CatalogConfig:
    p = Parser(prog="python -m data.catalog", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True,
                   help="dataset folder: writes OUT/manifest.csv and OUT/catalog.json")
    p.add_argument("--input", type=Path,
                   help="your own CSV/FITS table with ra, dec (default: download GZ DECaLS)")
    p.add_argument("--catalog-url", default=GZ_DECALS_URL, help="catalogue to download")
    p.add_argument("--cache-dir", type=Path,
                   help="where the downloaded catalogue is kept (default: DATA_ROOT/cache)")
    p.add_argument("--max-rmag", type=float, default=17.77, help="r mag < this")
    p.add_argument("--max-z", type=float, default=0.15, help="redshift <= this")
    p.add_argument("--min-petro-theta", type=float, default=3.0,
                   help="Petrosian radius >= this, arcsec")
    p.add_argument("--n-train", type=non_negative_int, default=15000, metavar="N",
                   help="training galaxies")
    p.add_argument("--n-test", type=non_negative_int, default=2000, metavar="N", help="test galaxies")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the train/test draw (default: %(default)s)")
    p.add_argument("--id-column", help="id column (default: iauname/id/objid/nsaid)")
    p.add_argument("--drop-duplicates", action="store_true",
                   help="keep the first row of each duplicate id instead of failing")
    a = p.parse_args(argv)
    return CatalogConfig(**vars(a))


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: build_catalog(parse_args(argv)))


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
