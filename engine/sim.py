"""One SUMO instance: libsumo in-process by default, TraCI when a GUI is wanted.

State is read through lane subscriptions into preallocated numpy arrays, so
that a step costs SUMO's own work plus one dictionary walk, not a getter call
per lane. Any SUMO failure becomes a :class:`SimulationError` with SUMO's own
message.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sumo
from traci import constants as tc

from engine.errors import SimulationError

# Subscribed per lane (libsumo shares TraCI's constants).
_COUNT, _HALTING, _SPEED = (
    tc.LAST_STEP_VEHICLE_NUMBER,
    tc.LAST_STEP_VEHICLE_HALTING_NUMBER,
    tc.LAST_STEP_MEAN_SPEED,
)
_CO2 = tc.VAR_CO2EMISSION

_ACTIVE: Simulation | None = None  # libsumo allows one simulation per process


def sumo_binary(name: str = "sumo") -> str:
    """Path of a SUMO binary from the eclipse-sumo package (no system SUMO needed)."""
    os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
    return str(Path(sumo.SUMO_HOME) / "bin" / name)


def sumo_tool(*parts: str) -> str:
    """Path of a script under SUMO's ``tools/`` (routeSampler.py, tlsCycleAdaptation.py, ...)."""
    os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
    return str(Path(sumo.SUMO_HOME, "tools", *parts))


def check_display() -> None:
    """SimulationError at once when sumo-gui could not open a window (Linux without X or Wayland).

    Without this, sumo-gui retries the display for about a minute and prints a page of errors.
    """
    import sys

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise SimulationError("sumo-gui needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set "
                              "(run without --gui, or under xvfb-run)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


class Simulation:
    """Owns one SUMO run; ``start`` again reloads in place (cheap, same process)."""

    def __init__(self, gui: bool = False) -> None:
        self.gui = gui
        if gui:
            check_display()
            import traci as api
        else:
            import libsumo as api
        self.api = api
        self._running = False
        self._error_log: Path | None = None
        self._lanes: tuple[str, ...] = ()
        self.lane_count = np.zeros(0)
        self.lane_halting = np.zeros(0)
        self.lane_speed = np.zeros(0)
        self.lane_co2 = np.zeros(0)
        self._vars: tuple[int, ...] = (_COUNT, _HALTING, _SPEED)

    # -- lifecycle -------------------------------------------------------------
    def start(self, args: Sequence[str], error_log: Path | None = None) -> None:
        """Start SUMO with ``args`` (options only, no binary), or reload if running."""
        global _ACTIVE
        if not self.gui and _ACTIVE is not None and _ACTIVE is not self:
            raise SimulationError(
                "libsumo runs one simulation per process: close the other Simulation first "
                "(or run each in its own process)"
            )
        self._error_log = error_log
        full = list(args) + (["--error-log", str(error_log)] if error_log else [])
        try:
            if self._running:
                self.api.load(full)
            else:
                self.api.start([sumo_binary("sumo-gui" if self.gui else "sumo"), *full])
        except Exception as exc:
            self._running = False
            if not self.gui:
                _ACTIVE = None
            raise SimulationError(f"SUMO failed to start: {self._sumo_error(exc)}") from None
        self._running = True
        if not self.gui:
            _ACTIVE = self
        if self._lanes:
            self._subscribe()

    def close(self) -> None:
        """Release SUMO (flushes tripinfo and statistics output)."""
        global _ACTIVE
        if self._running:
            try:
                self.api.close()
            except Exception:
                pass
        self._running = False
        if _ACTIVE is self:
            _ACTIVE = None

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- stepping --------------------------------------------------------------
    @property
    def time(self) -> float:
        return self.api.simulation.getTime()

    def step(self, until: float = 0.0) -> None:
        """Advance one simulation step, or (``until`` > now) every step up to that time.

        Several steps in one call cost SUMO one subscription update instead of one
        per step: the subscribed lane values are those of the last step.
        """
        try:
            self.api.simulationStep(until)
        except Exception as exc:
            raise SimulationError(f"SUMO failed at t={self._safe_time()}s: {self._sumo_error(exc)}") from None

    def set_state(self, tls_id: str, state: str) -> None:
        self.api.trafficlight.setRedYellowGreenState(tls_id, state)

    def signal_state(self, tls_id: str) -> str:
        return self.api.trafficlight.getRedYellowGreenState(tls_id)

    # -- lane state ------------------------------------------------------------
    def watch_lanes(self, lanes: Sequence[str], co2: bool = False) -> None:
        """Subscribe to count, halting number and mean speed (and CO2 mg/s if asked) of ``lanes``."""
        self._lanes = tuple(lanes)
        n = len(self._lanes)
        self.lane_count = np.zeros(n)
        self.lane_halting = np.zeros(n)
        self.lane_speed = np.zeros(n)
        self.lane_co2 = np.zeros(n)
        self._vars = (_COUNT, _HALTING, _SPEED) + ((_CO2,) if co2 else ())
        if self._running:
            self._subscribe()

    def read_lanes(self) -> None:
        """Copy the latest subscription results into the lane arrays."""
        results = self.api.lane.getAllSubscriptionResults()
        count, halting, speed = self.lane_count, self.lane_halting, self.lane_speed
        for i, lane in enumerate(self._lanes):
            r = results[lane]
            count[i] = r[_COUNT]
            halting[i] = r[_HALTING]
            speed[i] = r[_SPEED]
        if len(self._vars) > 3:
            co2 = self.lane_co2
            for i, lane in enumerate(self._lanes):
                co2[i] = results[lane][_CO2]

    def lane_static(self) -> tuple[np.ndarray, np.ndarray]:
        """Length (m) and speed limit (m/s) of the watched lanes."""
        length = np.array([self.api.lane.getLength(la) for la in self._lanes])
        vmax = np.array([self.api.lane.getMaxSpeed(la) for la in self._lanes])
        return length, vmax

    def _subscribe(self) -> None:
        try:
            for lane in self._lanes:
                self.api.lane.subscribe(lane, self._vars)
        except Exception as exc:
            raise SimulationError(f"cannot watch lanes: {_first_line(exc)}") from None

    # -- errors ----------------------------------------------------------------
    def _safe_time(self) -> str:
        try:
            return f"{self.api.simulation.getTime():g}"
        except Exception:
            return "?"

    def _sumo_error(self, exc: BaseException) -> str:
        """SUMO's own error line from its log when there is one, else the exception's."""
        if self._error_log and self._error_log.is_file():
            lines = [ln.strip() for ln in self._error_log.read_text(errors="replace").splitlines()]
            errors = [ln for ln in lines if ln.startswith("Error:")]
            if errors:
                return errors[-1].removeprefix("Error:").strip()
        return _first_line(exc)
