"""Task presets and task settings. A *preset* is a YAML file of sampler settings: the packaged ones hold the
paper's PnP-GD settings per task (docs/method.md §3.4, `ncvsd_cli/presets/tasks/*.yaml`), a user's is given with
`--preset FILE`. The *settings* of a run are the merge (later wins): task preset < user preset < explicit
overrides (command-line flags), made by `task_settings`.
`nfe=N` (N denoiser calls) sets steps = N + 1, or steps = N / (len(ts) - 1) + 1 with a multi-step `ts`.

Fewer steps than the preset's: the paper tuned one schedule, 50 levels from σ_max = 80 with ρ = 2; cut to a few
levels it leaves the last denoiser call at a high noise level (σ = 5 for 4 calls) and restores nothing. Then
`few_step_sigma_max` and `few_step_rho` replace σ_max and ρ (unless the user's YAML or flags set them); their
defaults (FEW_STEP_SCHEDULE) were chosen on validation crops only (benchmarks/README.md, "Few-step PnP-GD").

`warm_start: {sigma_max, rho, steps}` is the schedule of `pnp-gd-warm` (PnP-GD started from the classical
estimate, `sampling.pnp_gd`; not in the paper): `task_settings(..., warm=True)` applies it (benchmarks/README.md,
"Warm start"). A preset's `method` is the sampler `ncvsd restore` uses by default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
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
#: The lowest noise level beta is scaled to (`task_settings`): the error std of rounding to 8 bits on the [-1, 1]
#: scale, (2 / 255) / sqrt(12). A measurement at sigma_y 0 kept the preset's beta, tuned at 0.05, and was fitted
#: loosely: on 64-px validation crops beta at this level gained +0.24 dB (sr4), +3.1 dB (deblur-gauss), +6.0 dB
#: (deblur-motion), +0.1 dB (phase retrieval) and nothing for inpainting (fitted exactly anyway).
BETA_FLOOR_SIGMA = 2 / 255 / math.sqrt(12)


def task_names() -> list[str]:
    """Tasks with a packaged preset, sorted."""
    root = resources.files("ncvsd_cli") / "presets" / "tasks"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads exponents without a dot or a sign (1e-3, 2E2, 1.5e3) as floats, as
    YAML 1.2 and Python do (YAML 1.1 reads them as text: `beta: 1e-3` was refused as not a number)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def safe_load(text: str) -> Any:
    """`yaml.safe_load` of `text`, with `1e-3` a float (`_Loader`); yaml.YAMLError where it does not parse."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = safe_load(text) or {}
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


#: What a task without a packaged preset starts from (the paper's schedule, docs/method.md §3.4); its operator's
#: `default_preset` or a `--preset FILE` must add at least `beta`.
GENERIC_SETTINGS: dict[str, Any] = {
    "operator": {}, "sigma_y": 0.05, "method": "pnp-gd", "steps": 50, "sigma_min": 0.002, "sigma_max": 80.0,
    "rho": 2.0, "ema_sigma": 100.0, "ema_decay": 0.6, "ts": None, "langevin_steps": 100, "langevin_c1": 0.1,
    "langevin_c2": 0.1, "runs": 1, "warm_start": None,
}


def _base_preset(task: str, preset_file: object) -> dict[str, Any]:
    """The packaged preset of `task`; else GENERIC_SETTINGS under the operator's `default_preset` (plug-ins);
    else GENERIC_SETTINGS when a preset file will complete it. ValueError when there is none of these."""
    if task in task_names():
        path = resources.files("ncvsd_cli") / "presets" / "tasks" / f"{task}.yaml"
        preset = _read_yaml(path.read_text(encoding="utf-8"), f"preset {task}")
        _validate(preset, f"preset {task}")
        return preset
    import operators

    own = getattr(operators.get(task), "default_preset", None)  # (an unknown task: its error, with close names)
    if own is None and preset_file is None:
        raise ValueError(f"no preset for task '{task}'; known: {', '.join(task_names())} (an operator can bring its "
                         "own `default_preset`, or give --preset FILE with at least beta)")
    preset = {**GENERIC_SETTINGS, **(own or {}), "task": task}
    _validate(preset, f"{task}: default_preset")
    return preset


def read_preset_file(path: str | Path) -> dict[str, Any]:
    """The mapping in the YAML preset file `path` (not yet merged); ValueError when it is missing, not a YAML
    mapping or has unknown keys. Read it once and pass the mapping as `preset_file` so that a long run cannot see
    the file change (or vanish) between images."""
    f = Path(path)
    if not f.is_file():
        raise ValueError(f"preset file not found: {f}")
    try:
        text = f.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"preset file {f} is not a text (YAML) file") from None
    data = _read_yaml(text, str(f))
    _validate(data, str(f))
    return data


def task_settings(task: str, nfe: int | None = None, preset_file: str | Path | Mapping[str, Any] | None = None,
                  warm: bool = False, **overrides: Any) -> dict[str, Any]:
    """The settings for `task`: task preset < `preset_file` YAML < `overrides` (None values are ignored).

    preset_file: a YAML file's path, or its mapping as read by read_preset_file.
    The task preset is the packaged `presets/tasks/<task>.yaml`, or for an operator without one (a plug-in) its
    class attribute `default_preset` over GENERIC_SETTINGS, or GENERIC_SETTINGS alone when `preset_file` completes
    it (it must then set beta).
    nfe: number of denoiser calls; sets `steps` (steps = nfe + 1 without `ts`). Raises ValueError for an unknown
    task or key, a bad value, or an nfe that contradicts an explicit `steps`. `operator` and `warm_start` dicts
    are merged key by key.
    beta is tuned relative to the noise level: a layer that changes `sigma_y` without setting `beta` rescales beta by
    (sigma_y_new / sigma_y_old)², keeping the preset's ratio beta / (2 sigma_y²); either level counts as at least
    BETA_FLOOR_SIGMA (sigma_y 0 included: 8-bit rounding's error).
    warm: the settings of pnp-gd-warm: the merged `warm_start` mapping replaces sigma_max, rho and steps (a YAML
    file's top-level values of these keys belong to pnp-gd; only `overrides`, i.e. command-line flags, and nfe
    win over warm_start) and the few-step schedule does not apply; its sigma_max, unless a file or flag sets it, is at
    least sigma_y (a start from
    y + sigma_max noise whose y is noisier than that leaves the noise: denoise at sigma_y 0.2 from 0.05 scored
    1.9 dB below a start at 0.2). ValueError when the task has no warm start
    (warm_start null, or phase retrieval, whose classical estimate is uninformative).
    """
    preset = _base_preset(task, preset_file)
    paper_steps = preset["steps"]
    user_keys: set[str] = set()
    override_keys = {k for k, v in overrides.items() if v is not None}
    layers: list[tuple[dict[str, Any], str]] = []
    if isinstance(preset_file, Mapping):
        layers.append((dict(preset_file), "--preset"))
    elif preset_file is not None:
        layers.append((read_preset_file(preset_file), str(preset_file)))
    layers.append(({k: v for k, v in overrides.items() if v is not None}, "overrides"))
    for layer, origin in layers:
        _validate(layer, origin)
        if "task" in layer and layer["task"] != task:
            raise ValueError(f"{origin}: task={layer['task']!r} contradicts the requested task {task!r}")
        op = {**preset.get("operator", {}), **layer.get("operator", {})}
        if "kernel" in layer.get("operator", {}) and "kernel_size" not in layer["operator"]:
            op.pop("kernel_size", None)  # a given kernel has its own size (the preset's is the drawn kernel's)
        if "sigma_y" in layer and "beta" not in layer and preset.get("sigma_y") is not None and preset.get("beta"):
            # both levels floored (an 8-bit measurement is never exact): a layer's sigma_y 0 set beta at the floor
            level, old = (max(float(v), BETA_FLOOR_SIGMA) for v in (layer["sigma_y"], preset["sigma_y"]))
            layer = {**layer, "beta": preset["beta"] * (level / old) ** 2}
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
        chosen = "sigma_max" in override_keys or any(  # a user's own warm_start sigma_max is kept as it is
            isinstance(layer.get("warm_start"), Mapping) and "sigma_max" in layer["warm_start"] for layer, _ in layers)
        if preset.get("sigma_y") is not None and not chosen:
            # the classical estimate holds the measurement's noise (denoise: it is y): start at least at sigma_y
            preset["sigma_max"] = max(float(preset["sigma_max"]), float(preset["sigma_y"]))
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
    if preset.get("beta") is None:
        raise ValueError(f"task {task}: no beta (likelihood temperature) in its settings; set it in --preset FILE")
    _validate(preset, f"task {task} (merged settings)")                 # cross-field checks, e.g. sigma_min < max
    return preset


def settings_sigmas(settings: dict[str, Any]):
    """The Karras noise levels of task settings (float64 tensor of length `steps`, docs/method.md §3.2)."""
    from ncvsd_cli.sampling.schedules import karras_sigmas
    return karras_sigmas(settings["steps"], settings["sigma_min"], settings["sigma_max"], settings["rho"])


def configure_operator(op, settings: dict[str, Any]):
    """`op` with the settings' ULA values (langevin_steps, langevin_c1, langevin_c2) applied; returns it."""
    for key in ("langevin_steps", "langevin_c1", "langevin_c2"):
        if settings.get(key) is not None:
            setattr(op, key, settings[key])
    return op


def build_operator(settings: dict[str, Any], image_shape: tuple[int, int, int]):
    """`operators.create(settings["task"], image_shape, **settings["operator"])`, configured by the settings
    (`configure_operator`). ValueError for bad parameters."""
    import operators

    return configure_operator(operators.create(settings["task"], tuple(image_shape), **settings.get("operator", {})),
                              settings)
