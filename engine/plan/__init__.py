"""Offline signal-plan generation: fixed time-of-day plans for every signal of a network.

A :class:`~engine.plan.model.Plan` holds, per period of the day, a common cycle and
each signal's green splits and offset. Plans come from Webster's method, a
two-way green wave, a simulation-based search, or a trained policy; every plan
is validated before it is written as SUMO ``tlLogic`` programs with a ``WAUT``,
a CSV timing sheet and an HTML report.

Each period's demand is the network's demand file, a twin calibrated to counts, or
a counts file calibrated on the way (``sources``).

Modules: ``config`` (the YAML config), ``sources`` (each period's demand),
``model`` (plans and their validation), ``corridor`` (geometry of the coordinated
route), ``green_wave`` (bands and offsets), ``webster_plan`` (Webster and
green-wave period plans), ``evaluate`` (simulating plans; the ``PlanPrograms``
controller), ``optimise`` (the search),
``distil`` (plans from a policy), ``export`` (SUMO file with WAUT, timing sheet),
``measure`` (per-approach delay, queue, v/c, LOS), ``report`` (HTML),
``pipeline`` (the ``cqsignal plan`` run) and ``cli``.
"""
