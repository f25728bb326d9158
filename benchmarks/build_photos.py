"""Builds the `photos` training set from the Debian packages in ncvsd_cli/training/photos_manifest.yaml: the same
as `python -m ncvsd_cli.training.photos` (which installed copies have; see its --help), kept here for the scripts.

Downloads each package once (`apt-get download PKG=VERSION`, needs a Debian bookworm apt source), unpacks it
with dpkg-deb into --cache, checks every sha256, refuses grey, held-out and validation photos, and writes WebP
files (short side <= --short-side px) plus dataset.json and ATTRIBUTION.txt into OUT (a folder, or a zip if OUT ends
in .zip). --licences permissive (default): public domain, CC0 and CC-BY photos only, so that trained weights can ship
under the MIT licence; --licences all adds the CC-BY-SA and GPL ones. `ncvsd train --data OUT` (or `--data photos`
with OUT at the default place, see data.py) reads it.
Usage:  python benchmarks/build_photos.py ~/.cache/ncvsd/photos.zip --cache /tmp/photo-packages
"""

from ncvsd_cli.training.photos import main

if __name__ == "__main__":
    main()
