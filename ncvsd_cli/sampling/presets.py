"""Task presets: the paper's PnP-GD settings per task (docs/method.md §3.4), packaged as `ncvsd_cli/presets/tasks/*.yaml`.

Merge order (later wins): packaged preset < user YAML (`--preset FILE`) < explicit overrides (command-line flags).
`nfe=N` (N denoiser calls) sets steps = N + 1, or steps = N / (len(ts) - 1) + 1 with a multi-step `ts`.

Fewer steps than the preset's: the paper tuned one schedule, 50 levels from σ_max = 80 with ρ = 2; cut to a few
levels it leaves the last denoiser call at a high noise level (σ = 5 for 4 calls) and restores nothing. Then
`few_step_sigma_max` and `few_step_rho` replace σ_max and ρ (unless the user's YAML or flags set them); their
defaults (FEW_STEP_SCHEDULE) were chosen on validation crops only (benchmarks/README.md, "Few-step PnP-GD").

`warm_start: {sigma_max, rho, steps}` is the schedule of `pnp-gd-warm` (PnP-GD started from the classical
estimate, `sampling.pnp_gd`; not in the paper): `load_task_preset(..., warm=True)` applies it (benchmarks/README.md,
"Warm start"). A preset's `method` is the sampler `ncvsd restore` uses by default.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

_NUMBER = (int, float)
#: Every preset key and what it must hold (used in the error messages).
PRESET_KEYS: dict[str, str] = {
    "task": "operator name (operators.names())",
    "operator": "dict of operator parameters for operators.create",
    "sigma_y": "measurement noise std >= 0 on the [-1, 1] scale",
    "method": "sampler name in sampling.METHODS",
    "steps": "number of noise levels N >= 2 (N - 1 denoiser calls)",
    "sigma_min": "smallest noise level > 0",
    "sigma_max": "largest noise level > sigma_min",
    "rho": "Karras schedule exponent > 0",
    "beta": "likelihood temperature > 0",
    "ema_sigma": "EMA active below this sigma (>= 0; 0 or null = off)",
    "ema_decay": "EMA decay in [0, 1)",
    "ts": "null or increasing indices into the 40-point grid (multi-step prior step)",
    "langevin_steps": "ULA iterations >= 1 (operators without a closed-form likelihood step)",
    "langevin_c1": "ULA step-size constant C1 > 0",
    "langevin_c2": "ULA step-size constant C2 > 0",
    "runs": "number of independent runs the paper used per image (>= 1; best-of-N must be labelled)",
    "few_step_sigma_max": "sigma_max when --nfe gives fewer steps than the preset's (null: keep sigma_max)",
    "few_step_rho": "rho when --nfe gives fewer steps than the preset's (null: keep rho)",
    "warm_start": "null or {sigma_max, rho, steps}: the schedule of pnp-gd-warm (start from the classical estimate)",
}
#: Keys a `warm_start` mapping may set (they replace the preset's own under pnp-gd-warm).
WARM_START_KEYS = ("sigma_max", "rho", "steps")
#: Default few-step schedule (module docstring); a preset's own few_step_* keys win, null keeps the paper's.
FEW_STEP_SCHEDULE: dict[str, float] = {"sigma_max": 10.0, "rho": 7.0}


def task_names() -> list[str]:
    """Tasks with a packaged preset, sorted."""
    root = resources.files("ncvsd_cli") / "presets" / "tasks"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{origin}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: a preset must be a mapping of keys to values, got {type(data).__name__}")
    return data


def _validate(p: dict[str, Any], origin: str) -> None:
    unknown = sorted(set(p) - set(PRESET_KEYS))
    if unknown:
        raise ValueError(f"{origin}: unknown preset key(s) {unknown}; known: {sorted(PRESET_KEYS)}")

    def bad(key: str) -> ValueError:
        return ValueError(f"{origin}: {key}={p[key]!r} is invalid; expected {PRESET_KEYS[key]}")

    def num(key: str, lo: float, lo_ok: bool = False, hi: float = math.inf) -> None:
        v = p.get(key)
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, _NUMBER) or not math.isfinite(v):
            raise bad(key)
        if v < lo or (v == lo and not lo_ok) or v >= hi:
            raise bad(key)

    num("sigma_y", 0, lo_ok=True)
    num("sigma_min", 0)
    num("sigma_max", 0)
    num("rho", 0)
    num("few_step_sigma_max", 0)
    num("few_step_rho", 0)
    num("beta", 0)
    num("ema_sigma", 0, lo_ok=True)
    num("ema_decay", 0, lo_ok=True, hi=1)
    num("langevin_c1", 0)
    num("langevin_c2", 0)
    for key, lo in (("steps", 2), ("langevin_steps", 1), ("runs", 1)):
        v = p.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
            raise bad(key)
    if p.get("sigma_min") is not None and p.get("sigma_max") is not None and p["sigma_min"] >= p["sigma_max"]:
        raise ValueError(f"{origin}: sigma_min={p['sigma_min']} must be < sigma_max={p['sigma_max']}")
    if "operator" in p and not isinstance(p["operator"], dict):
        raise bad("operator")
    for key in ("task", "method"):
        if key in p and not isinstance(p[key], str):
            raise bad(key)
    ws = p.get("warm_start")
    if ws is not None:
        if not isinstance(ws, dict) or set(ws) - set(WARM_START_KEYS) or None in ws.values():
            raise bad("warm_start")
        _validate(ws, f"{origin}: warm_start")
    if p.get("ts") is not None:
        from ncvsd_cli.sampling.schedules import validate_ts
        try:
            p["ts"] = validate_ts(p["ts"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{origin}: ts={p['ts']!r} is invalid ({exc})") from None


def load_task_preset(task: str, nfe: int | None = None, preset_file: str | Path | None = None,
                     warm: bool = False, **overrides: Any) -> dict[str, Any]:
    """The settings for `task`: packaged preset < `preset_file` YAML < `overrides` (None values are ignored).

    nfe: number of denoiser calls; sets `steps` (steps = nfe + 1 without `ts`). Raises ValueError for an unknown
    task or key, a bad value, or an nfe that contradicts an explicit `steps`. `operator` and `warm_start` dicts
    are merged key by key.
    beta is tuned relative to the noise level: a layer that changes `sigma_y` without setting `beta` rescales beta by
    (sigma_y_new / sigma_y_old)², keeping the preset's ratio beta / (2 sigma_y²).
    warm: the settings of pnp-gd-warm: the merged `warm_start` mapping replaces sigma_max, rho and steps (a YAML
    file's top-level values of these keys belong to pnp-gd; only `overrides`, i.e. command-line flags, and nfe
    win over warm_start) and the few-step schedule does not apply. ValueError when the task has no warm start
    (warm_start null, or phase retrieval, whose classical estimate is uninformative).
    """
    known = task_names()
    if task not in known:
        raise ValueError(f"no preset for task '{task}'; known: {', '.join(known)}")
    path = resources.files("ncvsd_cli") / "presets" / "tasks" / f"{task}.yaml"
    preset = _read_yaml(path.read_text(encoding="utf-8"), f"preset {task}")
    _validate(preset, f"preset {task}")
    paper_steps = preset["steps"]
    user_keys: set[str] = set()
    override_keys = {k for k, v in overrides.items() if v is not None}
    layers: list[tuple[dict[str, Any], str]] = []
    if preset_file is not None:
        f = Path(preset_file)
        if not f.is_file():
            raise ValueError(f"preset file not found: {f}")
        layers.append((_read_yaml(f.read_text(encoding="utf-8"), str(f)), str(f)))
    layers.append(({k: v for k, v in overrides.items() if v is not None}, "overrides"))
    for layer, origin in layers:
        _validate(layer, origin)
        if "task" in layer and layer["task"] != task:
            raise ValueError(f"{origin}: task={layer['task']!r} contradicts the requested task {task!r}")
        op = {**preset.get("operator", {}), **layer.get("operator", {})}
        if "sigma_y" in layer and "beta" not in layer and preset.get("sigma_y") and layer["sigma_y"] > 0:
            layer = {**layer, "beta": preset["beta"] * (layer["sigma_y"] / preset["sigma_y"]) ** 2}
        if isinstance(layer.get("warm_start"), dict) and isinstance(preset.get("warm_start"), dict):
            layer = {**layer, "warm_start": {**preset["warm_start"], **layer["warm_start"]}}  # key by key
        preset.update(layer)
        preset["operator"] = op
        user_keys |= set(layer)
    if warm:
        from ncvsd_cli.sampling.pnp_gd import NO_WARM_START_TASKS

        if not preset.get("warm_start") or task in NO_WARM_START_TASKS:
            raise ValueError(f"task '{task}' has no warm start (no informative classical estimate, or its preset's "
                             "warm_start is null); use pnp-gd")
        preset.update({k: v for k, v in preset["warm_start"].items() if k not in override_keys})
    if nfe is not None:
        if isinstance(nfe, bool) or int(nfe) != nfe or nfe < 1:
            raise ValueError(f"nfe must be a positive integer, got {nfe!r}")
        per_step = len(preset["ts"]) - 1 if preset.get("ts") else 1
        if nfe % per_step:
            raise ValueError(f"nfe={nfe} is not a multiple of {per_step} denoiser calls per step (ts={preset['ts']})")
        steps = int(nfe) // per_step + 1
        if "steps" in overrides and overrides["steps"] is not None and overrides["steps"] != steps:
            raise ValueError(f"nfe={nfe} implies steps={steps}, but steps={overrides['steps']} was also given")
        preset["steps"] = steps
    if preset["steps"] < paper_steps and not warm:
        for key in ("sigma_max", "rho"):
            value = preset.get(f"few_step_{key}", FEW_STEP_SCHEDULE[key])
            if value is not None and key not in user_keys:
                preset[key] = value
    _validate(preset, f"task {task} (merged settings)")                 # cross-field checks, e.g. sigma_min < max
    return preset


def preset_sigmas(preset: dict[str, Any]):
    """The Karras noise levels of a preset (float64 tensor of length `steps`, docs/method.md §3.2)."""
    from ncvsd_cli.sampling.schedules import karras_sigmas
    return karras_sigmas(preset["steps"], preset["sigma_min"], preset["sigma_max"], preset["rho"])


def build_operator(preset: dict[str, Any], image_shape: tuple[int, int, int]):
    """operators.create(task, image_shape, **preset['operator']) with the preset's ULA settings applied."""
    import operators
    op = operators.create(preset["task"], tuple(image_shape), **preset.get("operator", {}))
    for key in ("langevin_steps", "langevin_c1", "langevin_c2"):
        if preset.get(key) is not None:
            setattr(op, key, preset[key])
    return op


#: Samplers driven by the generator whose settings come from the task presets.
PNP_METHODS = ("pnp-gd", "pnp-gd-warm")


def pnp_arguments(method: str, preset: dict[str, Any], sigma_y: float | None = None):
    """(sigmas, keyword arguments) for calling PnP sampler `method` (PNP_METHODS) with `preset`, loaded with
    `warm=(method == "pnp-gd-warm")`. sigma_y (default: the preset's) feeds the warm start's classical estimate."""
    if method not in PNP_METHODS:
        raise ValueError(f"{method!r} is not a PnP-GD method ({', '.join(PNP_METHODS)})")
    kwargs = pnp_gd_settings(preset)
    if method == "pnp-gd-warm":
        kwargs["sigma_y"] = float(preset["sigma_y"] if sigma_y is None else sigma_y)
    return preset_sigmas(preset), kwargs


def pnp_gd_settings(preset: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of `pnp_gd` taken from a preset: beta, ema_sigma, ema_decay, ts."""
    return {k: preset.get(k) for k in ("beta", "ema_sigma", "ema_decay", "ts")}
