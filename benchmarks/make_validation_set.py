"""Builds the model-selection set: 64x64 crops of photos that are neither `builtin` training nor held-out images.

matplotlib's grace_hopper (a dependency, always there) gives 5 crops; scikit-learn's china and flower give 4 each
when scikit-learn is importable (it is not a dependency: `pip install scikit-learn`, or unpack
`sklearn/datasets/images/*.jpg` from its wheel and pass --sklearn-images DIR). Used with
`ncvsd bench --dataset DIR --tasks sr4,deblur-gauss,deblur-motion,inpaint-box --nfe 49 --methods pnp-gd,classical -c GEN`.

--fur-wheels DIR adds two furry animals (4 crops each: the first 13 crops hold no fur, and fur is where
the default model fails), read from wheels that PyPI still serves:  pip download --no-deps --only-binary :all:
--python-version 3.10 scipy==1.9.3 imgaug==0.4.0 -d DIR  (scipy's `misc.face` raccoon, public domain per scipy's
docs, bz2-compressed raw 768x1024x3 uint8 in scipy/misc/face.dat; imgaug's quokka.jpg, public domain).
--whole N writes instead each photo's centre square resized to N px (Lanczos), named after the photo: the
256-px validation photos of benchmarks/photos-default/, benchmarks/camera-noise/ and others are
`--whole 256 --fur-wheels DIR` without scikit-learn (grace_hopper, quokka, raccoon).
Usage:  python benchmarks/make_validation_set.py OUT_DIR [--sklearn-images DIR] [--fur-wheels DIR] [--whole N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

SIZE = 64
#: (left, top) of the 64 px crops taken from each photo rescaled to a height of 160 px.
CROPS = {"g": [(10, 10), (60, 20), (30, 80), (70, 90)], "china": [(20, 20), (110, 50), (60, 90)],
         "flower": [(20, 20), (110, 50), (60, 90)], "raccoon": [(15, 10), (120, 15), (60, 85)],
         "quokka": [(85, 5), (85, 90), (5, 90)]}


def _centre_square(im: Image.Image, size: int) -> Image.Image:
    """The photo's centre square resized to size x size px (Lanczos)."""
    w, h = im.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return im.crop(box).resize((size, size), Image.LANCZOS)


def _whole_and_crops(im: Image.Image, prefix: str, out: Path, whole: int | None = None) -> list[Path]:
    """The centre square resized to 64 px, plus CROPS[prefix] from the photo at 160 px height; with `whole`, only
    the centre square at `whole` px, named after the photo."""
    if whole is not None:
        name = {"g": "grace_hopper"}.get(prefix, prefix)
        _centre_square(im, whole).save(out / f"{name}.png")
        return [out / f"{name}.png"]
    w, h = im.size
    paths = [out / f"{prefix}0_whole.png"]
    _centre_square(im, SIZE).save(paths[0])
    small = im.resize((w * 160 // h, 160), Image.LANCZOS)
    for i, (x, y) in enumerate(CROPS[prefix], start=1):
        paths.append(out / f"{prefix}{i}_crop.png")
        small.crop((x, y, x + SIZE, y + SIZE)).save(paths[-1])
    return paths


def _fur_photos(wheels: Path) -> dict[str, Image.Image]:
    """The raccoon (scipy 1.9 wheel) and the quokka (imgaug wheel) found in `wheels`, as RGB images."""
    import bz2
    import io
    import zipfile

    import numpy as np

    def member(pattern: str, name: str) -> bytes:
        found = sorted(wheels.glob(pattern))
        if not found:
            raise SystemExit(f"no {pattern} in {wheels}; see --help for the pip download command")
        with zipfile.ZipFile(found[-1]) as z:
            return z.read(name)

    face = np.frombuffer(bz2.decompress(member("scipy-1.9*.whl", "scipy/misc/face.dat")), dtype=np.uint8)
    quokka = Image.open(io.BytesIO(member("imgaug-*.whl", "imgaug/quokka.jpg"))).convert("RGB")
    return {"raccoon": Image.fromarray(face.reshape(768, 1024, 3)), "quokka": quokka}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sklearn-images", type=Path, help="folder holding china.jpg and flower.jpg")
    parser.add_argument("--fur-wheels", type=Path, help="folder holding the scipy 1.9 and imgaug wheels (see above)")
    parser.add_argument("--whole", type=int, help="only each photo's centre square, at this many px")
    args = parser.parse_args()
    fur = _fur_photos(args.fur_wheels) if args.fur_wheels is not None else {}  # fails before writing anything
    args.out.mkdir(parents=True, exist_ok=True)
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        paths = _whole_and_crops(Image.open(f).convert("RGB"), "g", args.out, args.whole)
    for name in ("china", "flower"):
        if args.sklearn_images is not None:
            im = Image.open(args.sklearn_images / f"{name}.jpg").convert("RGB")
        else:
            try:
                from sklearn.datasets import load_sample_image
            except ImportError:
                print(f"scikit-learn not importable: {name} skipped (see --sklearn-images)")
                continue
            im = Image.fromarray(load_sample_image(f"{name}.jpg"))
        paths += _whole_and_crops(im, name, args.out, args.whole)
    for name, im in fur.items():
        paths += _whole_and_crops(im, name, args.out, args.whole)
    print(f"{len(paths)} images in {args.out}")


if __name__ == "__main__":
    main()
