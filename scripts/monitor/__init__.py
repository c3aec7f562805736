"""The model monitor: an endpoint's captured requests (SageMaker's data capture, or the local endpoint's with
`make serve-local CAPTURE=<dir>`) against the baseline its model's training job wrote, as one HTML report, a
JSON summary with a verdict per check, and CloudWatch metrics an alarm can watch (`make monitor-report`).

- capture_data.py: reading capture files (the local loader), capture_aws.py: a SageMaker endpoint's capture
  from S3 and the model it serves (the AWS loader);
- drift.py: the statistical tests; analysis.py: the computation (the model on the captured images, the checks,
  the timeline, the most unusual images);
- monitor_plots.py, monitor_report.py (the page and the JSON), monitor_cli.py (the command);
- publish.py: the figures as CloudWatch metrics; baseline_cli.py: a baseline for a model that has none.
"""
