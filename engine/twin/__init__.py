"""The predictive digital twin: detector counts in, forecasts, what-if simulation, plans out."""
