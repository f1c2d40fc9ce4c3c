"""Launch lightglue_matcher (and RViz on request) on a ROS 2 install (Humble, Jazzy, Kilted).

    ros2 launch lightglue_ros matcher.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info rviz:=true

The node's topics are relative (image, camera_info, depth, odom, ...): ``namespace`` moves them all, and the
``image`` / ``camera_info`` / ``depth`` arguments remap the inputs (``image`` also names the compressed topic,
``<image>/compressed``, used with ``image_transport: compressed``). Every other setting is a parameter in
``params_file`` (default: the installed config/matcher.yaml); ``device`` and ``use_sim_time`` given here override
the file. This file does not touch the DDS configuration: robots keep their own.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "lightglue_ros"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    default_params = os.path.join(share, "config", "matcher.yaml")
    rviz_config = os.path.join(share, "config", "matcher.rviz")

    namespace = LaunchConfiguration("namespace")
    image = LaunchConfiguration("image")
    use_sim_time = LaunchConfiguration("use_sim_time")

    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node and its topics."),
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Input image topic (sensor_msgs/Image; <image>/compressed for compressed)."),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="CameraInfo topic of the image."),
        DeclareLaunchArgument("depth", default_value="/camera/depth/image_raw",
                              description="Registered depth image (16UC1 mm or 32FC1 m), used with use_depth: true."),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameter file of lightglue_matcher."),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Use /clock (bag playback)."),
        DeclareLaunchArgument("device", default_value="auto",
                              description="Torch device: auto, cpu or cuda (overrides params_file)."),
        DeclareLaunchArgument("rviz", default_value="false", description="Start RViz with config/matcher.rviz."),
    ]

    matcher = Node(
        package=PACKAGE,
        executable="matcher_node",
        name="lightglue_matcher",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"),
                    {"use_sim_time": use_sim_time, "device": LaunchConfiguration("device")}],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info")),
            ("depth", LaunchConfiguration("depth")),
        ],
    )

    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=namespace,
        arguments=["-d", rviz_config],
        parameters=[{"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="log",
    )

    return LaunchDescription(arguments + [matcher, rviz])
