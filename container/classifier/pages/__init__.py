"""The HTML pages the project writes (the debugger report in the training image; the tuning job, evaluation
and endpoint reports of scripts/reports): one frame and one stylesheet for all, a Jinja2 template per report.

- render.py: the renderer (Jinja2 with autoescaping: every value a template shows is text, whatever it holds;
  class, job and trial names, log lines and failure reasons are user data) and the atomic write;
- templates/: the frame every report extends (base.html), its stylesheet (report.css) and the macros the
  reports' templates share (macros.html: sections, tables, notes, plots, badges, links);
- formats.py: how numbers, durations and times read on a page (the templates' filters);
- figures.py: matplotlib figures as embedded PNGs.

A page is self-contained: plots are PNG data URIs, no script, no stylesheet or font from the network.
"""
