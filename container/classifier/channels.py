"""The training job's input channels, /opt/ml/input/data/<channel>: the contract between the training
container and whoever starts a job (SageMaker through the AWS scripts, or local mode). The one list;
torch-free, so that the scripts read it too.
"""

TRAIN = "train"
VALID = "valid"
TEST = "test"  # evaluated once at the end; never used to choose anything (tuning trials do not get it)
WEIGHTS = "weights"  # one pretrained weights file, for jobs that cannot download
FEATURE_CACHE = "feature_cache"  # cached backbone features (local mode fills it; see training/feature_cache.py)
# A model artifact (a model dir or model.tar.gz) the job starts from: the final job of a tuning job (the best
# trial's tuned head), or incremental training on new data (see training/init_model.py).
INIT_MODEL = "init_model"

REQUIRED = (TRAIN, VALID)
OPTIONAL = (TEST, WEIGHTS, FEATURE_CACHE, INIT_MODEL)
# The channels a data set folder holds (DATA=dir locally, its copy in S3): the others are made by jobs.
DATA_SET = (TRAIN, VALID, TEST, WEIGHTS)
