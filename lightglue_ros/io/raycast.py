"""Planar ray casting shared by the synthetic scenes (`synthetic`'s room and `drive`'s road): one home for it.

Every scene surface is a textured rectangle (`Quad`). A rectangle maps image pixels to its texture tile by one
homography (`quad_homography`), whose third row is the inverse depth of the ray's hit (affine in the pixel on a
plane); `pixel_rect` bounds the pixels a rectangle can cover, after clipping it to the near plane. The renderers
keep a z-buffer of inverse depth and colour the frame from a texture atlas.

Camera frame = optical convention (x right, y down, z forward); texel centres at integer atlas coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Near clipping plane (m): surfaces closer than this are not drawn.
NEAR = 0.02


@dataclass
class Quad:
    """A textured rectangle ``origin + a * edge_u + b * edge_v``, a, b in [0, 1].

    ``edge_u x edge_v`` points to the side it is seen from (into the room for walls, outwards for box faces).
    """

    origin: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    tile: tuple = (0, 0, 1, 1)  # x0, y0, width, height of its texture in the atlas (texels)
    wall: bool = False  # room wall: the nearest wall in front is always the right one, no inside test needed
    two_sided: bool = False


def clip_near(pts: np.ndarray, near: float = NEAR) -> np.ndarray:
    """Clip a convex polygon (camera frame, Nx3) to z >= near (Sutherland-Hodgman against one plane)."""
    out = []
    for i in range(len(pts)):
        p, q = pts[i], pts[(i + 1) % len(pts)]
        if p[2] >= near:
            out.append(p)
        if (p[2] >= near) != (q[2] >= near):
            s = (near - p[2]) / (q[2] - p[2])
            out.append(p + s * (q - p))
    return np.array(out).reshape(-1, 3)


def pixel_rect(corners: np.ndarray, K: np.ndarray, w: int, h: int):
    """Return the bounding rectangle (r0, r1, c0, c1) of the visible part of a polygon in the image, or None."""
    pts = clip_near(corners)
    if len(pts) < 3:
        return None
    uv = (pts @ K.T)[:, :2] / pts[:, 2:3]
    c0, r0 = np.floor(uv.min(0)).astype(int)
    c1, r1 = np.ceil(uv.max(0)).astype(int) + 1
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, w), min(r1, h)
    return None if c0 >= c1 or r0 >= r1 else (r0, r1, c0, c1)


def cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3-vector cross product (np.cross costs ~50 us a call; this is on the per-frame path)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def quad_homography(q: Quad, o: np.ndarray, U: np.ndarray, V: np.ndarray, Kinv: np.ndarray) -> np.ndarray:
    """Return H (3x3) with H @ [u, v, 1] = w * [atlas_x, atlas_y, 1], w = 1/depth of the ray's hit on the plane.

    `o`, `U`, `V`: the quad's origin and edges in the camera frame.
    """
    n = cross3(U, V)
    nn = n @ n
    g_w = (n @ Kinv) / (n @ o)  # inverse depth is affine in (u, v) for a plane
    m_a = cross3(V, n) / nn  # a = (X - o) . m_a on the plane
    m_b = cross3(n, U) / nn
    x0, y0, tw, th = q.tile
    row_x = tw * (m_a @ Kinv) + (x0 - 0.5 - tw * (m_a @ o)) * g_w  # texel centres at integers
    row_y = th * (m_b @ Kinv) + (y0 - 0.5 - th * (m_b @ o)) * g_w
    return np.stack([row_x, row_y, g_w])
