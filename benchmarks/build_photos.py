"""Builds the `photos` training set from the Debian packages in ncvsd_cli/training/photos_manifest.yaml.

Downloads each package once (`apt-get download PKG=VERSION`, needs a Debian bookworm apt source), unpacks it
with dpkg-deb into --cache, checks every sha256, refuses grey, held-out and validation photos, and writes WebP
files (short side <= --short-side px) plus dataset.json and ATTRIBUTION.txt into OUT (a folder, or a zip if OUT ends
in .zip). --licences permissive (default): public domain, CC0 and CC-BY photos only, so that trained weights can ship
under the MIT licence; --licences all adds the CC-BY-SA and GPL ones. `ncvsd train --data OUT` (or `--data photos`
with OUT at the default place, see data.py) reads it.
Usage:  python benchmarks/build_photos.py ~/.cache/ncvsd/photos.zip --cache /tmp/photo-packages
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ncvsd_cli.training.photos import DEFAULT_SHORT_SIDE, LICENCE_POLICIES, MANIFEST_PATH, build_photos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--cache", type=Path, required=True, help="folder for the downloaded and unpacked packages")
    p.add_argument("--manifest", type=Path, default=MANIFEST_PATH)
    p.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE, help="largest short side in px")
    p.add_argument("--limit", type=int, help="keep only the first N photos (quick tests)")
    p.add_argument("--licences", choices=LICENCE_POLICIES, default="permissive",
                   help="permissive: public domain, CC0, CC-BY only (default); all: also CC-BY-SA, GPL, LGPL")
    a = p.parse_args()
    try:
        summary = build_photos(a.out, a.cache, a.manifest, a.short_side, a.limit, a.licences)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
