"""`python -m lightglue_ros ...` is the same as the `lightglue-ros` console script."""
import sys

from lightglue_ros.tools.cli import main

sys.exit(main())
