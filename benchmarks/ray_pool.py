"""Run benchmark specs on a Ray cluster (the optional ``ray`` extra).

Imported only when a benchmark asks for Ray. Each run is one Ray task with
``max_calls=1``, so its worker process exits afterwards: libsumo gets a fresh
process per run, as in the local pool. Every node needs cqsignal installed and
must see the network files at the same paths (embedded networks always do).
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.pool import OnDone
from benchmarks.worker import RunSpec, execute, failed_row
from engine.errors import ConfigError


def run_ray(specs: Sequence[RunSpec], address: str, on_done: OnDone, workers: int | None = None) -> None:
    """Send every spec to the Ray cluster at ``address`` ('local' starts one with ``workers`` CPUs)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the optional extra: pip install 'cqsignal[ray]'") from None

    started = False
    if not ray.is_initialized():
        kwargs: dict = {"include_dashboard": False} if address == "local" else {}
        if address == "local" and workers:
            kwargs["num_cpus"] = workers
        try:
            ray.init(address=address, log_to_driver=False, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = (str(exc).strip() or exc.__class__.__name__).splitlines()[0]
            raise ConfigError(f"ray address '{address}': cannot connect ({first})") from None
        started = True
    try:
        task = ray.remote(num_cpus=1, max_calls=1, max_retries=0)(execute)
        refs = {task.remote(spec): spec for spec in specs}
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                spec = refs[ref]
                try:
                    row = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died or the node was lost
                    row = failed_row(spec, f"ray task failed: {exc.__class__.__name__}")
                on_done(spec, row)
    finally:
        if started:
            ray.shutdown()
