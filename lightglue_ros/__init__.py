"""lightglue_ros: ALIKED + LightGlue visual odometry. The core (models, front end, geometry, odometry, datasets)
knows no ROS; `node.py` adapts it to ROS 2."""
__version__ = "0.1.0"
