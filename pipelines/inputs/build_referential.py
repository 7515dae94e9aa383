"""Derive the shipped commune referential from the INSEE Official Geographic Code as Etalab
publishes it in the npm package ``@etalab/decoupage-administratif``.

    python -m visuels.inputs.build_referential            # downloads the pinned package (network)
    python -m visuels.inputs.build_referential --from decoupage-administratif-6.0.0.tgz

The package's tarball is checked against the registry's sha512 integrity pinned below, so the
file derived from it is the same on every machine: ``referential_data/cog.json.gz``. Only this
script ever touches the network, never a render. Data: Licence Ouverte / Open Licence 2.0
(Etalab, INSEE, DGCL, La Poste); the package's code: MIT.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

PACKAGE = "@etalab/decoupage-administratif"
VERSION = "6.0.0"  # COG 2026
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/decoupage-administratif-{VERSION}.tgz"
INTEGRITY = "sha512-XavYsFlbcM/prKr8hNHPKER94IHw/dsxNM4nxjWMYk6PLFACpEedvn/7wK8Baozm0dCYhWWcf+7bcWpA5pmCaQ=="
PUBLISHED = "2026-04-09"  # the package version's date on the npm registry
TARGET = Path(__file__).parent / "referential_data" / "cog.json.gz"
CREDIT = (
    "Code officiel géographique 2026 (INSEE), EPCI (DGCL), codes postaux (La Poste), as published by"
    f" Etalab in {PACKAGE} {VERSION}; Licence Ouverte / Open Licence 2.0"
)
# The COG's kinds of commune, as the referential names them.
KINDS = {
    "commune-actuelle": "current",
    "commune-deleguee": "delegated",
    "commune-associee": "associated",
    "arrondissement-municipal": "district",
}
# Columns of each commune row, in order (a list per row keeps the file small).
COLUMNS = ("code", "name", "kind", "department", "region", "epci", "postcodes", "population", "parent", "former")


class IntegrityError(RuntimeError):
    """The tarball is not the one pinned: never derive the referential from it."""


def _checked(data: bytes) -> bytes:
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise IntegrityError(f"{PACKAGE} {VERSION}: integrity {digest}, expected {INTEGRITY}")
    return data


def _members(tarball: bytes) -> dict[str, object]:
    """The package's data files, by name (communes, departements, regions, epci)."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        files = {}
        for name in ("communes", "departements", "regions", "epci"):
            handle = archive.extractfile(f"package/data/{name}.json")
            assert handle is not None, name
            files[name] = json.load(handle)
    return files


def derive(tarball: bytes) -> dict:
    """The referential as the project ships it, from the package's tarball (checked)."""
    data = _members(_checked(tarball))
    epci_of = {member["code"]: epci["code"] for epci in data["epci"] for member in epci["membres"]}
    rows = []
    for entry in data["communes"]:
        kind = KINDS[entry["type"]]
        parent = entry.get("chefLieu") or entry.get("commune") or ""  # delegated, associated: its commune
        rows.append(
            [
                entry["code"],
                entry["nom"],
                kind,
                entry.get("departement", ""),
                entry.get("region", ""),
                epci_of.get(entry["code"], "") if kind == "current" else "",
                ";".join(entry.get("codesPostaux", [])),
                entry.get("population"),
                parent,
                ";".join(entry.get("anciensCodes", [])),
            ]
        )
    rows.sort(key=lambda row: (row[0], row[2] != "current", row[1]))
    return {
        "source": f"{PACKAGE} {VERSION} ({PUBLISHED}), {TARBALL_URL}",
        "integrity": INTEGRITY,
        "credit": CREDIT,
        "columns": list(COLUMNS),
        "regions": {region["code"]: region["nom"] for region in data["regions"]},
        "departments": {
            department["code"]: [department["nom"], department["region"]] for department in data["departements"]
        },
        "epci": {epci["code"]: epci["nom"] for epci in data["epci"]},
        "communes": rows,
    }


def encode(referential: dict) -> bytes:
    """Deterministic bytes: sorted keys, no time stamp in the gzip header."""
    text = json.dumps(referential, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="tarball", type=Path, help=f"the package's tarball (default: {TARBALL_URL})")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    if args.tarball is None:
        with urllib.request.urlopen(TARBALL_URL, timeout=60) as response:
            tarball = response.read()
    else:
        tarball = args.tarball.read_bytes()
    try:
        encoded = encode(derive(tarball))
    except IntegrityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_name(args.output.name + ".tmp")
    temporary.write_bytes(encoded)
    temporary.replace(args.output)
    print(f"{args.output}: {len(encoded):,} bytes from {PACKAGE} {VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
