"""Plain JPEG photos restored with the noise level's floor raised by the file's quantisation
(`restore.noise_level_floor`) against the 8-bit floor 0.01 alone (what `restore` did before).

Each photo of VAL (and of HELDOUT, reported apart and never used to choose anything) is degraded the way a user's
photo is (noise_level.py's cases, no measurement noise), saved as a JPEG at each --qualities (Pillow, 4:2:0 chroma)
and decoded, then restored with the default sampler (restoration seed 0), its noise level read from the image
(and for deblur-gauss its blur width) as for any plain photo. Where both floors give the same level the restoration
is run once. Writes OUT/readings.csv (the level read, the file's quantisation scale and the JPEG's actual error),
OUT/rows.csv (with the levels used), OUT/summary.md and OUT/grid-<set>-<case>.jpg (per photo and quality: clean,
decoded JPEG, 8-bit floor, JPEG floor).

Usage:  python benchmarks/jpeg_inputs.py VAL --out OUT [--heldout DIR] [--cases ...] [--qualities 60,80,95] [--readings-only]
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import torch
from blur_estimate import write_csv  # benchmarks/ is the script's folder
from noise_level import measured, photo_benchmark_args, run_cases, summary

from ncvsd_cli import images
from ncvsd_cli.measurement import estimate_noise_sigma
from ncvsd_cli.restore import (
    NOISE_CAP,
    NOISE_FLOOR,
    RestoreOptions,
    Restorer,
    noise_level_floor,
    restore_image,
)

SETTINGS = ("8-bit floor", "JPEG floor")


def as_jpeg(y: torch.Tensor, quality: int) -> images.DecodedImage:
    """y (1, 3, H, W) in [-1, 1] saved as a JPEG of `quality` by Pillow and decoded as `restore` decodes it."""
    from PIL import Image

    buf = io.BytesIO()
    pixels = (images.to_unit(y.clamp(-1, 1))[0].permute(1, 2, 0) * 255).round().byte().numpy()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return images.read_image(buf.getvalue())


def readings(folder: Path, name: str, cases: list[str], qualities: list[int]) -> list[dict]:
    """Per photo, case and quality: the level `estimate_noise_sigma` reads from the decoded JPEG, the file's
    quantisation scale and the JPEG's actual error (std of decoded - the 8-bit degraded image, [-1, 1] scale)."""
    rows = []
    for path in sorted(folder.glob("*.png")):
        x = images.load_image(path)[:, :3]
        for case in cases:
            y = measured(x, case, 0.0)
            for q in qualities:
                decoded = as_jpeg(y, q)
                rows.append({"set": name, "image": path.stem, "case": case, "quality": q,
                             "read": round(estimate_noise_sigma(decoded.tensor), 4),
                             "jpeg_sigma": round(decoded.jpeg_sigma, 4),
                             "jpeg_error": round(float((decoded.tensor - y).std()), 4)})
    return rows


def run(folder: Path, name: str, cases: list[str], qualities: list[int], out: Path) -> list[dict]:
    done: dict[tuple[int, float], tuple] = {}  # (id(input), level) -> (input, estimate, seconds): run once

    def variants(x, case):
        return [({"quality": q}, as_jpeg(measured(x, case, 0.0), q)) for q in qualities]

    def floored(with_jpeg: bool):
        def restore(decoded, task, params):
            jpeg_sigma = decoded.jpeg_sigma if with_jpeg else None
            probe = Restorer.from_options(RestoreOptions(task=task, params=params).validate(), load=False)
            level = float(probe.measurement(decoded.tensor, task, jpeg_sigma=jpeg_sigma).sigma_y)
            key = (id(decoded), level)
            if key not in done:
                start = time.perf_counter()
                est = restore_image(decoded.tensor, task, params=params, seed=0, jpeg_sigma=jpeg_sigma)[:1]
                done[key] = (decoded, est.clamp(-1, 1), time.perf_counter() - start)  # decoded: its id stays its own
            _, est, seconds = done[key]
            return est, {"level": level, "jpeg_sigma": round(decoded.jpeg_sigma, 4), "seconds": seconds}
        return restore

    return run_cases(folder, name, cases, out, variants, list(zip(SETTINGS, (floored(False), floored(True)))))


def main() -> None:
    a, sets = photo_benchmark_args(__doc__, "deblur-gauss-width-read,deblur-motion,sr4", readings_only=True,
                                   qualities="60,80,95")
    cases, qualities = a.cases.split(","), [int(q) for q in a.qualities.split(",")]
    write_csv([r for folder, name in sets for r in readings(folder, name, cases, qualities)], a.out / "readings.csv")
    if a.readings_only:
        return
    rows = [r for folder, name in sets for r in run(folder, name, cases, qualities, a.out)]
    write_csv(rows, a.out / "rows.csv")
    sigmas = {r["quality"]: r["jpeg_sigma"] for r in rows}
    floors = ", ".join(f"quality {q}: {noise_level_floor((NOISE_FLOOR, NOISE_CAP), sigmas[q])}" for q in qualities)
    title = ("# Plain JPEG photos: noise level floored at 0.01 (8 bits) vs with the file's quantisation added "
             f"(default sampler, seed 0; mean of the photos; floors {floors})")
    text = summary(rows, title=title, group="quality", settings=SETTINGS)
    (a.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
