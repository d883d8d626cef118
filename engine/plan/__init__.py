"""Offline signal-plan generation: fixed time-of-day plans for every signal of a network.

A :class:`~engine.plan.model.Plan` holds, per period of the day, a common cycle and
each signal's green splits and offset. Plans come from Webster's method, a
two-way green wave, a simulation-based search, or a trained policy; every plan
is validated before it is written as SUMO ``tlLogic`` programs with a ``WAUT``,
a CSV timing sheet and an HTML report.
"""
