"""The reports people look at, besides the debugger's: one self-contained HTML page each (the debugger
report's look, plots as embedded PNGs, no script, nothing from the network), locally and on AWS alike.

- tuning: a tuning job's trials (`make tune-report TUNING=...`; the local tuner writes it at its end);
- evaluation: a model on a class-per-folder data set, from its model directory or through an endpoint
  (`make evaluate MODEL=... DATA=...`, `make evaluate ENDPOINT=... DATA=...`);
- endpoint: an endpoint's traffic, errors and latency (`make endpoint-report`).
"""
