"""Driving Ray: the results directory, Tune, the search, calibration, studies."""
