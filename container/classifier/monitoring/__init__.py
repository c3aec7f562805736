"""What the model monitor compares, computed the same way at training time and on captured requests: each
image's statistics (images.py), its pooled backbone features through a fixed random projection, the predicted
class and its probability (observe.py), and the training job's baseline of them (baseline.py). The drift tests
and the report are the monitor's (scripts/monitor)."""
