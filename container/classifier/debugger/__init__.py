"""Debugger and profiler that work without the SageMaker Debugger service.

smdebug's hook captures the tensors; a background sampler and the loop's phase timings profile the job;
the rules (SageMaker's names and defaults), the StopTraining action and the HTML report run inside the
training job and again offline on a finished job's output (`python -m classifier.debugger.cli`).

Importing this package is cheap: torch, smdebug and matplotlib are imported by the modules that need them.
"""
