"""lightglue_ros: ALIKED + LightGlue visual odometry for ROS 2.

The subpackages follow the pipeline, image -> features -> matches -> pose -> odometry -> ROS:
``core`` (types, configs, errors, lie, image), ``features`` (extractors, weights), ``matching`` (LightGlue, the
streaming front end), ``geometry`` (camera, two-view, RGB-D, covariance), ``odometry`` (VisualOdometry, Pipeline,
the sequence runner), ``io`` (datasets, bags, synthetic scenes, the ROS message decoder), ``eval`` (metrics,
plots). Only ``ros`` (the node) and ``tools`` (CLI, benchmarks, demo) import rclpy.
"""
__version__ = "0.1.0"
