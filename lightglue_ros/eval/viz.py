"""Pictures of a run: the matches image, the CLI's pair plot and the top-down trajectory plot.

The matches image is the node's ``matches/image`` and the demo's matches.png.

matplotlib is imported inside the plotting functions: it is slow to import and only these two need it; the
matches image is drawn with OpenCV (the node draws one per frame while a viewer listens).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import cv2
import numpy as np

#: Layout of `draw_matches`: caption band above the images, legend band below (the images keep their width).
CAPTION_BAND = 22
LEGEND_BAND = 18
_FONT, _SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.42
_WHITE = (255, 255, 255)


def score_colours(scores: np.ndarray) -> np.ndarray:
    """(N,) scores in [0, 1] -> (N,3) RGB 0..255: red (low) -> yellow -> green (high); NaN counts as 0."""
    s = np.clip(np.nan_to_num(np.asarray(scores, np.float64), nan=0.0), 0.0, 1.0)
    return np.stack([np.minimum(1.0, 2.0 * (1.0 - s)), np.minimum(1.0, 2.0 * s), np.zeros_like(s)], 1) * 255


def spread_subset(points: np.ndarray, scores: np.ndarray, k: int, size: tuple[int, int]) -> np.ndarray:
    """Return the indices of at most ``k`` points spread over an image of ``size`` (w, h), the best-scored first.

    The image is cut into about ``k`` square cells; the best match of every cell comes first (by score), then the
    second best of every cell, and so on: a cluster of matches cannot hide the rest of the image.
    """
    n = len(points)
    if n <= k:
        return np.arange(n)
    w, h = size
    cell = max(1.0, math.sqrt(w * h / max(k, 1)))
    cols = max(1, int(math.ceil(w / cell)))
    p = np.asarray(points, np.float64)
    cx = np.clip(p[:, 0] // cell, 0, cols - 1).astype(np.int64)
    cy = np.clip(p[:, 1] // cell, 0, None).astype(np.int64)
    key = cy * cols + cx
    s = np.nan_to_num(np.asarray(scores, np.float64), nan=0.0)
    order = np.lexsort((-s, key))  # by cell, best score first within a cell
    sorted_key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)  # 0 = best of its cell
    return order[np.lexsort((-s[order], rank))][:k]


def draw_matches(image0: np.ndarray, image1: np.ndarray, points0: np.ndarray, points1: np.ndarray,
                 scores: np.ndarray, text: str, max_lines: int = 60) -> np.ndarray:
    """Draw reference | current side by side (RGB uint8), a caption above and a legend below.

    The images are shown in dimmed grey so that the matches stand out of any texture. At most ``max_lines``
    matches, spread over the current image (`spread_subset`), get a thin line and ringed endpoints; the others are
    small dots. Colour by score: red (low) -> yellow -> green (high).
    """
    a, b = _dimmed(image0), _dimmed(image1)
    h = max(a.shape[0], b.shape[0])
    x1 = a.shape[1]  # where the current image starts
    canvas = np.zeros((CAPTION_BAND + h + LEGEND_BAND, x1 + b.shape[1], 3), np.uint8)
    canvas[CAPTION_BAND:CAPTION_BAND + a.shape[0], :x1] = a
    canvas[CAPTION_BAND:CAPTION_BAND + b.shape[0], x1:] = b
    canvas[CAPTION_BAND:CAPTION_BAND + h, x1 - 1] = 0  # a dark seam between reference and current
    p0 = np.asarray(points0, np.float64).reshape(-1, 2)
    p1 = np.asarray(points1, np.float64).reshape(-1, 2)
    s = np.asarray(scores, np.float64).reshape(-1)
    finite = np.all(np.isfinite(p0), 1) & np.all(np.isfinite(p1), 1)
    p0, p1, s = p0[finite], p1[finite], s[finite]
    n = len(p0)
    drawn = spread_subset(p1, s, max_lines, (b.shape[1], b.shape[0])) if n else np.zeros(0, np.int64)
    if n:
        colours = [tuple(float(v) for v in c) for c in score_colours(s)]
        q0 = np.round(p0 + (0, CAPTION_BAND)).astype(int)
        q1 = np.round(p1 + (x1, CAPTION_BAND)).astype(int)
        chosen = np.zeros(n, bool)
        chosen[drawn] = True
        for i in np.flatnonzero(~chosen):
            cv2.circle(canvas, tuple(q0[i]), 1, colours[i], -1, cv2.LINE_AA)
            cv2.circle(canvas, tuple(q1[i]), 1, colours[i], -1, cv2.LINE_AA)
        for i in drawn:
            cv2.line(canvas, tuple(q0[i]), tuple(q1[i]), colours[i], 1, cv2.LINE_AA)
        for i in drawn:  # endpoints last: a ring keeps them visible where lines cross
            for q in (q0[i], q1[i]):
                cv2.circle(canvas, tuple(q), 4, (0, 0, 0), -1, cv2.LINE_AA)
                cv2.circle(canvas, tuple(q), 3, colours[i], -1, cv2.LINE_AA)
    cv2.putText(canvas, text, (4, CAPTION_BAND - 7), _FONT, _SCALE + 0.03, _WHITE, 1, cv2.LINE_AA)
    _legend(canvas, len(drawn), n)
    return canvas


def _legend(canvas: np.ndarray, drawn: int, total: int) -> None:
    """One line below the images: how many matches are drawn, and the colour scale."""
    y = canvas.shape[0] - 5
    label = f"lines: {drawn} of {total} matches, spread over the image; dots: the rest.   score 0"
    cv2.putText(canvas, label, (4, y), _FONT, _SCALE, _WHITE, 1, cv2.LINE_AA)
    (width, _), _ = cv2.getTextSize(label, _FONT, _SCALE, 1)
    x0, bar = 4 + width + 4, 60
    if x0 + bar + 12 > canvas.shape[1]:
        return  # too narrow for the colour scale (tiny images): the text says enough
    canvas[y - 8:y, x0:x0 + bar] = score_colours(np.linspace(0.0, 1.0, bar)).astype(np.uint8)[None]
    cv2.putText(canvas, "1", (x0 + bar + 4, y), _FONT, _SCALE, _WHITE, 1, cv2.LINE_AA)


def _dimmed(image: np.ndarray) -> np.ndarray:
    """Any camera image -> HxWx3 uint8 grey at about half brightness (a backdrop, not the subject)."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        finite = img[np.isfinite(img)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0  # float images are in [0, 1]
        img = np.clip(np.nan_to_num(img.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    grey = (40.0 + 0.45 * img.astype(np.float32)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


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
    _save(fig, ax, path, title, dpi=100)


def plot_topdown(path, est_aligned, gt, title: str = "") -> None:
    """Trajectories from above: x (right) against z (forward) of the optical frame.

    A bird's eye for a forward-looking camera (y points down, so it is the axis we look along). Ground truth lives
    in its own world (a mocap room, a GPS map); both trajectories are first expressed in the optical frame of the
    first GT camera, one rigid transform for both, so the picture does not depend on it.
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
    _save(fig, ax, path, title, dpi=110)


def _save(fig, ax, path, title: str, dpi: int) -> None:
    """Title the axes, write the figure (its folder created) and free it."""
    import matplotlib.pyplot as plt

    if title:
        ax.set_title(title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=dpi, bbox_inches="tight")
    plt.close(fig)
