#!/usr/bin/env bash
# The README's pictures of the bench report and of the uncertainty heat map, remade with the shipped default model
# on the bundled example (CPU, a few minutes). Writes benchmarks/default-model/report/ and
# benchmarks/default-model/uncertainty-inpaint-box-astronaut*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
example=ncvsd_cli/examples/astronaut.png
dest=benchmarks/default-model
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A small bench (the model's 64 px, two tasks, three NFE values) and its one-page report.
ncvsd bench --dataset "$example" --tasks sr4,inpaint-box --methods pnp-gd,pnp-gd-warm,classical --nfe 1,4,10 \
    --out "$work/bench" --device cpu --quiet > /dev/null
mkdir -p "$dest/report"
cp "$work"/bench/{report.html,report.png,nfe_plot.png,grid_sr4.png,grid_inpaint-box.png,summary.md} "$dest/report/"

# Box inpainting at full size, 4 posterior samples: their mean and where they disagree (the JSON has the scale).
ncvsd degrade --task inpaint-box "$example" -o "$work/astro_box.png" --seed 0 --quiet
(cd "$work" && ncvsd restore astro_box.png --samples 4 --batch-size 4 --mean --std -o unc/ --device cpu --quiet \
    --json) > "$dest/uncertainty-inpaint-box-astronaut.json"
cp "$work/unc/astro_box_std_map.png" "$dest/uncertainty-inpaint-box-astronaut.png"
cp "$work/unc/astro_box_mean.png" "$dest/uncertainty-inpaint-box-astronaut-mean.png"
