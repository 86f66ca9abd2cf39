"""Shared test setup: quiet TensorFlow logs and locate ../shared/data."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
