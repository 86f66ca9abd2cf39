"""Images in, keypoints out.

``single_person`` (person crops -> heatmaps -> keypoints; shared by evaluation and
the exported SavedModel), ``multi_person`` (whole photos -> every person, the
official Associative Embedding test), ``estimator`` (``PoseEstimator``, the
Python API on photos) and ``files`` (the estimator over image files, folders and
videos: ``hourglass-predict``'s library). This file imports none of them, so
each layer imports only what it needs.
"""
