"""Progress of long loops on stderr: items (images, runs), then the network evaluations of the one in flight.

On a terminal (one that reports its size, `sized_terminal`): two tqdm bars, the items' bar (kept on screen at the
end) and below it a steps bar in NFE (network evaluations) that restarts for every batch. Elsewhere (a pipe, a log
file): one status line every `interval` seconds, e.g.
`restore sr4: 1/3 img (33%), elapsed 01:02, ETA 02:04, NFE=20/49, batch ETA 00:31`. Nothing with `quiet`. The interval defaults to $NCVSD_PROGRESS_INTERVAL seconds (else 30).

Samplers report their iterations through the shared `callback` argument (`ncvsd_cli.sampling.methods`);
`step_callback` turns those calls into network evaluations done, using how many calls a prepared run makes
(`callbacks_per_run`).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

#: The steps bar: network evaluations done (fractions within a tiled one: `CallProgress`) of the total.
STEPS_FORMAT = "{desc}: {pct_down:3d}%|{bar}| {n_nfe}/{total:.0f} NFE [{elapsed}<{remaining}, {rate_fmt}]"
#: Seconds between status lines when stderr is not a terminal (overridden by $NCVSD_PROGRESS_INTERVAL).
DEFAULT_INTERVAL = 30.0


def write_line(line: str) -> None:
    """`line` on stderr at once; a progress bar on screen (tqdm) is cleared first and redrawn under it."""
    if "tqdm" in sys.modules:
        from tqdm import tqdm

        with tqdm.external_write_mode(file=sys.stderr):
            sys.stderr.write(line)
            sys.stderr.flush()
    else:
        sys.stderr.write(line)
        sys.stderr.flush()


def nfe_text(n: float) -> str:
    """Network evaluations done for display: '3', '1000', '0.12' (a tiled evaluation in flight), '2.5'."""
    return f"{n:.0f}" if n >= 100 or n == int(n) else f"{n:.2f}".rstrip("0").rstrip(".")


def whole(n: float) -> int:
    """Items finished of a count that a batch in flight moves by fractions: n rounded down (0.75 of 2 is 0/2)."""
    return math.floor(n + 1e-9)


def percent_down(n: float, total: float) -> int:
    """Percentage done, rounded down: 99.6 % is not 100 % (the count shows 0/1 there)."""
    return math.floor(100 * min(n / total, 1.0) + 1e-9) if total > 0 else 0


@functools.cache
def _progress_bar() -> type:
    """tqdm with fields for bar_format: `{n_whole}` (items finished: n rounded down, as a batch in flight moves n
    by fractions and `{n:.0f}` would show 1/2 at 0.75), `{n_nfe}` (`nfe_text`), `{pct_down}` (`percent_down`) and
    `{n_sized}` / `{total_sized}` (whole below 1000, then k, M: tqdm's unit_scale showed "4.00/400 img")."""
    from tqdm import tqdm

    def sized(x: float) -> str:
        return tqdm.format_sizeof(x) if x >= 1000 else f"{whole(x)}"

    class ProgressBar(tqdm):
        @property
        def format_dict(self):
            values = super().format_dict
            n, total = values["n"], values["total"]
            values.update(n_whole=whole(n), n_nfe=nfe_text(n), pct_down=percent_down(n, total or 0),
                          n_sized=sized(n), total_sized=sized(total or 0))
            return values

    return ProgressBar


def sized_terminal(stream: Any) -> bool:
    """Whether `stream` is a terminal that reports its size: on a pseudo-terminal of width or height 0 (`script` run
    without a terminal, some containers) tqdm's bars stay blank, so progress goes there as status lines."""
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError, OSError):  # closed or unusual stream
        return False
    try:
        return min(os.get_terminal_size(stream.fileno())) > 0
    except (AttributeError, ValueError, OSError):  # a terminal without a descriptor (an IDE's console): as tqdm
        return True


class StatusReporter:
    """Progress of one long loop on a stream (default stderr).

    On a terminal: a tqdm bar with the total, the rate and the ETA (`show_rate=False` leaves the rate out, e.g.
    when `unit` is seconds). Otherwise: one plain line every `interval` seconds (> 0; 0 = at every update),
    e.g. `ncvsd train: 1.02k/4.10k img (25%), 12.3 img/s, elapsed 01:23, ETA 04:10, loss=0.53`, also while no
    update comes (a heartbeat thread; a bar is refreshed likewise), and a last line at `close()` when any line
    was printed. Nothing at all when `quiet`. `total` (> 0) and `initial` (>= 0)
    are in `unit`; `update(n)` adds n (may be fractional; the count stops at `total`), `set_postfix(values)`
    shows name=value pairs.
    """

    def __init__(self, total: float, desc: str, unit: str = "img", *, quiet: bool = False, interval: float = 30.0,
                 unit_scale: bool = False, show_rate: bool = True, initial: float = 0, stream: Any = None):
        import time

        from tqdm import tqdm

        self._tqdm, self._clock = tqdm, time.monotonic
        self.total, self.desc, self.unit = float(total), desc, unit
        self.unit_scale, self.show_rate, self.interval = unit_scale, show_rate, max(float(interval), 0.0)
        self.n = self._initial = float(initial)
        self.postfix: dict[str, Any] = {}
        self._eta: Countdown | None = None  # `eta`, counting down on the clock
        self.stream = sys.stderr if stream is None else stream
        self._start = self._last_line = self._clock()
        self._printed = False
        self._last_text = ""
        terminal = sized_terminal(self.stream)
        self.mode = "quiet" if quiet else "bar" if terminal else "lines"
        self._bar = None
        if self.mode == "bar":
            rate = ", {rate_fmt}" if show_rate else ""  # whole items finished: a batch's steps move the bar
            counts = "{n_sized}/{total_sized}" if unit_scale else "{n_whole}/{total:.0f}"
            fmt = "{desc}: {pct_down:3d}%|{bar}| " + counts + " {unit} [{elapsed}<{remaining}" + rate + "{postfix}]"
            self._bar = _progress_bar()(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale,
                                        bar_format=fmt, file=self.stream, dynamic_ncols=True, leave=True)
        self._lock, self._stop = threading.Lock(), threading.Event()
        if self.mode != "quiet" and self.interval > 0:  # a long step between updates (e.g. a classical solve)
            threading.Thread(target=self._heartbeat, daemon=True).start()

    @property
    def eta(self) -> float | None:
        """Seconds left, when the caller knows better than the rate (line mode): set as seconds from now, read
        counting down to 0, so that the lines printed between two updates do not repeat a stale ETA."""
        eta = self._eta  # read once: the caller's thread may clear it while the heartbeat's reads
        return None if eta is None else eta.left()

    @eta.setter
    def eta(self, seconds: float | None) -> None:
        self._eta = None if seconds is None else self.countdown(seconds)

    def countdown(self, seconds: float) -> Countdown:
        """A postfix value that shows `seconds` from now as the time left when it is printed (`Countdown`)."""
        return Countdown(self._clock() + float(seconds), self._clock)

    def _heartbeat(self) -> None:
        """Keep the elapsed time moving while no update comes: a status line (line mode) or a bar refresh every
        `interval` seconds without one."""
        while not self._stop.wait(self.interval / 2):
            with self._lock:
                if self._stop.is_set():
                    return
                if self._bar is not None:
                    self._bar.refresh()
                elif self.mode == "lines" and self._clock() - self._last_line >= self.interval:
                    self._line()

    def update(self, n: float = 1) -> None:
        """Add `n` units of work; in line mode print a status line when `interval` seconds have passed."""
        n = max(min(n, self.total - self.n), 0.0)  # a time budget's last step overshoots: stop at the total
        with self._lock:
            self.n += n
            if self._bar is not None:
                self._bar.update(n)
            elif self.mode == "lines" and self._clock() - self._last_line >= self.interval:
                self._line()

    def skip(self, n: float) -> None:
        """Count `n` units of work done before (a resumed run's finished rows, a failed item given up) without
        counting them in the rate: the ETA comes from the work this run does."""
        n = max(min(n, self.total - self.n), 0.0)
        with self._lock:
            self.n += n
            self._initial += n
            if self._bar is not None:
                self._bar.initial += n
                self._bar.n += n
                self._bar.last_print_n = self._bar.n
                self._bar.refresh()

    def describe(self, desc: str) -> None:
        """Show `desc` before the counts from now on (e.g. the tasks of a batch, as later inputs add some)."""
        self.desc = desc
        if self._bar is not None:
            with self._lock:
                self._bar.set_description_str(desc, refresh=False)

    def set_postfix(self, values: dict[str, Any], refresh: bool = False) -> None:
        """Show `values` (name -> value, formatted with str) after the counts (with `refresh`: on a bar at once, in
        line mode as a status line when `interval` has passed)."""
        self.postfix = dict(values)
        if self._bar is not None:
            with self._lock:
                self._bar.set_postfix({k: str(v) for k, v in values.items()}, refresh=refresh)
        elif refresh and values and self.mode == "lines" and self._clock() - self._last_line >= self.interval:
            with self._lock:
                self._line()

    def status_line(self) -> str:
        """The current one-line status (what line mode prints)."""
        def fmt_n(x: float) -> str:  # 12, 1.02k, 4.19M
            return self._tqdm.format_sizeof(x) if self.unit_scale and x >= 1000 else f"{x:.0f}"

        elapsed = self._clock() - self._start
        done = f"{fmt_n(whole(self.n))}/{fmt_n(self.total)} {self.unit} ({percent_down(self.n, self.total)}%)"
        parts = [f"{self.desc}: {done}"]
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        eta = self.eta
        if eta is not None and elapsed + eta > 0:  # the rate the ETA implies ("16:03 per img" beside "elapsed 00:15,
            rate = (self.total - self._initial) / (elapsed + eta)  # ETA 12:25": one counted start-up, one the steps)
        if self.show_rate and rate >= 0.1:
            parts.append(f"{self._tqdm.format_sizeof(rate) if rate >= 1000 else f'{rate:.3g}'} {self.unit}/s")
        elif self.show_rate and rate > 0:  # slow work (a large photo): time per item, not 8e-05 img/s
            parts.append(f"{self._tqdm.format_interval(1 / rate)} per {self.unit}")
        parts.append(f"elapsed {self._tqdm.format_interval(elapsed)}")
        if eta is not None:
            parts.append(f"ETA {self._tqdm.format_interval(eta)}")
        elif rate > 0:
            parts.append(f"ETA {self._tqdm.format_interval(max(self.total - self.n, 0.0) / rate)}")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def _line(self) -> None:
        text = self.status_line()
        if text == self._last_text:  # close() right after an update's line: nothing new to say
            return
        self._last_text = text
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):  # closed stream: progress is never worth failing for
            self.mode = "quiet"
        self._last_line, self._printed = self._clock(), True

    def close(self) -> None:
        """Finish the bar (it stays on screen) or print the last status line."""
        self._stop.set()
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif self.mode == "lines" and self._printed:
                self._line()
            self.mode = "quiet"


def default_interval() -> float:
    """$NCVSD_PROGRESS_INTERVAL (seconds >= 0) or DEFAULT_INTERVAL when unset or not a number (said once: "abc" was
    ignored without a word)."""
    text = os.environ.get("NCVSD_PROGRESS_INTERVAL", "")
    try:
        return max(float(text), 0.0) if text.strip() else DEFAULT_INTERVAL
    except ValueError:
        if not _said_interval:
            _said_interval.append(text)
            write_line(f"ncvsd: warning: NCVSD_PROGRESS_INTERVAL={text!r} is not a number of seconds: status lines "
                       f"every {DEFAULT_INTERVAL:g} s\n")
        return DEFAULT_INTERVAL


_said_interval: list[str] = []  # (the warning above, once per process)


def callbacks_per_run(call: Any) -> int | None:
    """How many times a sampler prepared as `call` (a `MethodCall`) calls its callback: PnP-GD once per noise level
    but the last (len(sigmas) - 1), DPS once per step (`steps`), DAPS once per annealing level (`levels`), a classical
    baseline once. None when it cannot be told (the denoiser method, a plug-in without these arguments)."""
    if getattr(call, "iterations", None):
        return int(call.iterations)
    if call.sigmas is not None:
        return max(len(call.sigmas) - 1, 1)
    for key in ("levels", "steps"):
        if call.kwargs.get(key):
            return int(call.kwargs[key])
    return 1 if call.nfe == 0 else None


def step_callback(call: Any, on_step: Callable[[float, float], None] | None) -> Callable[[dict], None] | None:
    """A sampler callback that calls `on_step(nfe_done, nfe_total)` (network evaluations of this run, per image)
    after each iteration; None when `on_step` is None, the run makes no network evaluations or its iterations are
    unknown."""
    n = callbacks_per_run(call)
    if on_step is None or not n or not call.nfe:  # nothing to show for a run without network evaluations
        return None
    total = float(call.nfe)
    return lambda info: on_step(min((int(info.get("i", 0)) + 1) * total / n, total), total)


class CallProgress:
    """The network evaluations of one run, in fractions: whole evaluations from the sampler's callback
    (`step_callback`) and, within a tiled generator call, the share of its tiles done
    (`networks.tiling.TiledDenoiser.on_tile`; one call is one evaluation), passed on as `on_step(done, total)`
    with done rising within 0..total. A large photo's evaluation takes minutes on a CPU: its tiles keep the
    progress and the ETA moving (a method whose callbacks are unknown, the denoiser, shows its tiles alone)."""

    def __init__(self, on_step: Callable[[float, float], None], total: float):
        self.on_step, self.total = on_step, float(total)
        self.calls = self.shown = 0.0

    def _show(self, done: float) -> None:
        done = min(done, self.total)
        if done > self.shown:
            self.shown = done
            self.on_step(done, self.total)

    def step(self, done: float, total: float) -> None:
        """The sampler's count (`step_callback`'s on_step): `done` evaluations finished."""
        self.calls = max(self.calls, float(done))
        self._show(self.calls)

    def tile(self, done: int, count: int) -> None:
        """`done` of the `count` tiles of the call in flight finished."""
        if done >= count:
            self.calls += 1
            self._show(self.calls)
        else:
            self._show(self.calls + done / count)


class Countdown:
    """The time left until `end` on `clock` (seconds), formatted as mm:ss when printed (`str`), at least 0."""

    def __init__(self, end: float, clock: Callable[[], float]):
        self.end, self.clock = end, clock

    def left(self) -> float:
        """Seconds until `end`, at least 0."""
        return max(self.end - self.clock(), 0.0)

    def __str__(self) -> str:
        from tqdm import tqdm

        return tqdm.format_interval(self.left())


class NestedProgress:
    """Items, then steps. `total` items (> 0) in `unit`; `update(n)` after n items finish (a batch); `step(done,
    total)` with the network evaluations done in the current batch. `close()` leaves the items' bar on screen."""

    def __init__(self, total: float, desc: str, unit: str = "img", *, quiet: bool = False,
                 interval: float | None = None, stream: Any = None):
        self.stream = sys.stderr if stream is None else stream
        self.items = StatusReporter(total, desc, unit, quiet=quiet, stream=self.stream,
                                    interval=default_interval() if interval is None else interval)
        self._steps = None
        self._batch_start = time.monotonic()
        self._cost = self._advanced = 0.0  # `begin`: what the batch in flight is worth; how far its steps moved
        self._first: tuple[float, float] | None = None  # (time, evaluations) of the batch's first step report

    @property
    def mode(self) -> str:
        """"bar" (terminal), "lines" (status lines) or "quiet"."""
        return self.items.mode

    def begin(self, cost: float) -> None:
        """The batch starting now is worth `cost` items (its `update(cost)` at the end): its steps move the items'
        count by their share of it, so the rate and ETA keep moving during a long batch (a DPS run of minutes)."""
        self._cost, self._advanced, self._first = float(cost), 0.0, None
        self._batch_start = time.monotonic()  # its ETA counts from here, not from the last batch's end

    def step(self, done: float, total: float) -> None:
        """Network evaluations `done` of `total` in the batch in flight."""
        if self.mode == "lines":  # the status first: the items' update below may print the line
            now = time.monotonic()
            status = {"NFE": f"{nfe_text(done)}/{total:.0f}"}  # a tiled evaluation moves it in fractions
            last = self._cost and self.items.n - self._advanced + self._cost >= self.items.total - 1e-9
            if self._first is None and done > 0:
                self._first = (now, done)
            # the rate after the batch's first report (a warm start's classical estimate and the first call's
            # set-up made the first ETA up to 2x too long), until there is one: since the batch began
            since, before = self._first if self._first and done > self._first[1] else (self._batch_start, 0.0)
            left = (now - since) * (total - done) / (done - before) if 0 < done < total else None
            self.items.eta = left if last else None  # the last batch: its own ETA is the run's (one ETA shown)
            if left is not None and not last:
                status["batch ETA"] = self.items.countdown(left)
            self.items.set_postfix(status)
        if self._cost and total > 0:
            target = self._cost * min(done / total, 1.0)
            if target > self._advanced:
                self.items.update(target - self._advanced)
                self._advanced = target
        if self.mode == "bar":
            if self._steps is None:
                self._steps = _progress_bar()(total=total, desc="  steps", unit="NFE", file=self.stream, leave=False,
                                              dynamic_ncols=True, bar_format=STEPS_FORMAT)
            if self._steps.total != total or done < self._steps.n:
                self._steps.reset(total=total)
            self._steps.update(done - self._steps.n)
        elif self.mode == "lines":
            self.items.update(0)  # prints a line when the interval has passed

    def describe(self, desc: str) -> None:
        """The items' description from now on (`StatusReporter.describe`)."""
        self.items.describe(desc)

    def skip(self, n: float) -> None:
        """`n` items done before (resumed) or given up: counted, not in the rate (`StatusReporter.skip`)."""
        self.items.skip(n)

    def update(self, n: float = 1) -> None:
        """`n` items finished (less what the batch's steps moved, after `begin`); the steps bar restarts with the
        next batch."""
        self._batch_start, self._first = time.monotonic(), None
        if self._steps is not None:
            self._steps.reset()
        self.items.eta = None
        self.items.set_postfix({})
        self.items.update(max(n - self._advanced, 0.0) if self._advanced else n)
        self._cost = self._advanced = 0.0

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()
            self._steps = None
        self.items.close()

    def __enter__(self) -> NestedProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
