"""The SB3 callback of a training run: progress bar, episode KPIs, evaluations, checkpoints.

Evaluations and checkpoints happen at the start of a rollout, right after the
algorithm's update, so a checkpoint holds every sample trained on so far and
nothing half-collected (a resumed PPO run loses no rollout data).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from stable_baselines3.common.callbacks import BaseCallback

from engine.report import console

if TYPE_CHECKING:
    from agents.train import Run


class TrainCallback(BaseCallback):
    """Connects SB3's training loop to the run's logging, evaluation and checkpoints."""

    def __init__(self, run: Run) -> None:
        super().__init__(verbose=0)
        self.run = run
        self._progress: Progress | None = None
        self._task = None
        self._rate_t = time.perf_counter()
        self._rate_steps = 0

    def _on_training_start(self) -> None:
        if self.run.quiet:
            return
        columns = (TextColumn("[bold]train[/]"), BarColumn(),
                   TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[kpis]}"))
        self._progress = Progress(*columns, console=console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.run.config.total_timesteps,
                                             completed=self.num_timesteps, rate="", kpis=self._kpis_text())
        self._rate_steps = self.run.env_steps()

    def _kpis_text(self) -> str:
        evals = self.run.state["history"]["eval"]
        if not evals:
            return "no evaluation yet"
        k = evals[-1]["kpis"]
        return (f"eval delay {k['mean_delay_s']:.1f} s/veh, queue {k['mean_queue_veh']:.1f}, "
                f"{k['throughput_veh_h']:.0f} veh/h")

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if info.get("kpis"):
                self.run.record_episode(info)
        if self._progress is not None:
            self._progress.update(self._task, completed=self.num_timesteps)
        return True

    def _on_rollout_start(self) -> None:
        run = self.run
        now = time.perf_counter()
        steps = run.env_steps()
        if now > self._rate_t and steps > self._rate_steps:
            rate = (steps - self._rate_steps) / (now - self._rate_t)
            self.logger.record("time/env_steps_per_s", rate)
            if self._progress is not None:
                self._progress.update(self._task, rate=f"{rate:.1f} env steps/s")
        cfg = run.config
        if run.due(cfg.eval.every, run.state["last_eval_step"]):
            run.evaluate()
            if self._progress is not None:
                self._progress.update(self._task, kpis=self._kpis_text())
        if run.due(cfg.checkpoint.every, run.state["last_checkpoint_step"]):
            run.save_checkpoint()
        self._rate_t, self._rate_steps = time.perf_counter(), run.env_steps()

    def _on_training_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
