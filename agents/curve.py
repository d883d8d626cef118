"""The learning-curve plot a run leaves in its folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _thousands(x: float, _pos: int) -> str:
    """Tick label of a timestep count: 400000 -> '400k'."""
    return f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"


def learning_curve(state: dict, path: Path, title: str) -> Path:
    """Mean delay of training episodes and evaluations against timesteps (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = state["history"]["train"], state["history"]["eval"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    ax = axes[0]
    if train:
        steps = np.array([e["step"] for e in train], dtype=float)
        delay = np.array([e["mean_delay_s"] for e in train], dtype=float)
        ax.scatter(steps, delay, s=8, alpha=0.35, label="training episodes")
        if len(delay) >= 5:
            w = max(5, len(delay) // 10)
            smooth = np.convolve(delay, np.ones(w) / w, mode="valid")
            ax.plot(steps[w - 1:], smooth, lw=2, label=f"mean of {w}")
    if evals:
        ax.plot([e["step"] for e in evals], [e["kpis"]["mean_delay_s"] for e in evals], "o-", color="C3",
                label="evaluation (held-out seeds)")
    base = state.get("baseline")
    if base:
        ax.axhline(base["kpis"]["mean_delay_s"], ls="--", color="k",
                   label=f"{base['controller']} (evaluation seeds)")
    ax.set_xlabel("timesteps")
    ax.xaxis.set_major_formatter(_thousands)
    ax.set_ylabel("mean delay [s/veh]")
    ax.set_title(f"{title}: delay")
    ax.legend(fontsize=8)
    ax = axes[1]
    if evals:
        steps = [e["step"] for e in evals]
        ax.plot(steps, [e["kpis"]["mean_queue_veh"] for e in evals], "o-", label="queue [veh/intersection]")
        ax2 = ax.twinx()
        ax2.plot(steps, [e["kpis"]["throughput_veh_h"] for e in evals], "s--", color="C2",
                 label="throughput [veh/h]")
        ax2.set_ylabel("throughput [veh/h]")
        ax2.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("timesteps")
    ax.xaxis.set_major_formatter(_thousands)
    ax.set_ylabel("mean queue [veh]")
    ax.set_title("evaluation: queue and throughput")
    ax.legend(fontsize=8, loc="upper right")
    from engine.outputs import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
