"""Pictures of a run: the matches image (the node's ``matches/image``, the demo's matches.png), the CLI's pair
plot and the top-down trajectory plot.

matplotlib is imported inside the plotting functions: it is slow to import and only these two need it; the
matches image is drawn with OpenCV (the node draws one per frame while a viewer listens).
"""
from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np


def draw_matches(image0: np.ndarray, image1: np.ndarray, points0: np.ndarray, points1: np.ndarray,
                 scores: np.ndarray, text: str, max_lines: int = 150) -> np.ndarray:
    """Reference | current side by side with a text band on top.

    Every match gets a dot on both images; at most ``max_lines`` (an even subset) get a line, so the images stay
    visible. Colour by score: red (low) -> yellow -> green (high).
    """
    a, b = _as_rgb8(image0), _as_rgb8(image1)
    band = 22
    h = max(a.shape[0], b.shape[0])
    canvas = np.zeros((h + band, a.shape[1] + b.shape[1], 3), np.uint8)
    canvas[band:band + a.shape[0], : a.shape[1]] = a
    canvas[band:band + b.shape[0], a.shape[1]:] = b
    n = len(points0)
    if n:
        s = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
        colours = np.stack([np.minimum(1.0, 2.0 * (1.0 - s)), np.minimum(1.0, 2.0 * s), np.zeros_like(s)], 1) * 255
        q0 = np.round(np.asarray(points0, np.float64) + (0, band)).astype(int)
        q1 = np.round(np.asarray(points1, np.float64) + (a.shape[1], band)).astype(int)
        overlay = canvas.copy()
        for i in np.unique(np.linspace(0, n - 1, min(n, max_lines)).astype(int)):
            cv2.line(overlay, tuple(q0[i]), tuple(q1[i]), tuple(float(c) for c in colours[i]), 1, cv2.LINE_AA)
        canvas = cv2.addWeighted(overlay, 0.6, canvas, 0.4, 0.0)  # lines translucent: the scene shows through
        for p, q, c in zip(q0, q1, colours):
            colour = tuple(float(v) for v in c)
            cv2.circle(canvas, tuple(p), 2, colour, -1, cv2.LINE_AA)
            cv2.circle(canvas, tuple(q), 2, colour, -1, cv2.LINE_AA)
    cv2.putText(canvas, text, (4, band - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]


def plot_matches(path, img0, img1, pts0, pts1, inliers=None, title: str = "") -> None:
    """Both images side by side, one line per match: green inliers, red outliers (all green without a mask)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = max(img0.shape[0], img1.shape[0])
    canvas = np.zeros((h, img0.shape[1] + img1.shape[1], 3), np.uint8)
    for x0, img in ((0, img0), (img0.shape[1], img1)):
        rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
        canvas[: img.shape[0], x0: x0 + img.shape[1]] = rgb
    fig, ax = plt.subplots(figsize=(12, 12 * h / canvas.shape[1] + 0.5))
    ax.imshow(canvas)
    ok = np.ones(len(pts0), bool) if inliers is None or len(inliers) != len(pts0) else inliers
    for good, colour in ((False, "tab:red"), (True, "lime")):
        sel = ok == good
        xs = np.stack([pts0[sel, 0], pts1[sel, 0] + img0.shape[1]])
        ys = np.stack([pts0[sel, 1], pts1[sel, 1]])
        ax.plot(xs, ys, "-", color=colour, linewidth=0.6, alpha=0.8)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_topdown(path, est_aligned, gt, title: str = "") -> None:
    """Trajectories from above: x (right) against z (forward) of the optical frame, a bird's eye for a
    forward-looking camera (y points down, so it is the axis we look along).

    Ground truth lives in its own world (a mocap room, a GPS map); both trajectories are first expressed in the
    optical frame of the first GT camera, one rigid transform for both, so the picture does not depend on it.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    to_cam0 = np.linalg.inv(np.asarray(gt.poses_se3[0]))
    gt, est_aligned = copy.deepcopy(gt), copy.deepcopy(est_aligned)
    gt.transform(to_cam0)
    est_aligned.transform(to_cam0)
    fig, ax = plt.subplots(figsize=(6, 6))
    g, e = np.asarray(gt.positions_xyz), np.asarray(est_aligned.positions_xyz)
    ax.plot(g[:, 0], g[:, 2], "-", color="0.3", label="ground truth")
    ax.plot(e[:, 0], e[:, 2], "-", color="tab:blue", label="estimate (aligned)")
    ax.plot(g[0, 0], g[0, 2], "o", color="0.3")
    ax.set_xlabel("x (right)")
    ax.set_ylabel("z (forward)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=110, bbox_inches="tight")
    plt.close(fig)
