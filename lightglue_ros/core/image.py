"""Images as the pipeline takes them: one check, one conversion to uint8 / grey, one conversion to a tensor.

Images are numpy arrays, HxW (mono) or HxWxC RGB with C in (1, 3, 4), uint8, uint16 (mono16 cameras) or float in
[0, 1]. Everything downstream of `to_uint8` is uint8.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Smallest image side the feature extractors accept (ALIKED's and XFeat's strides need a few cells).
MIN_IMAGE_SIDE = 16


def check_image(image) -> str:
    """Why ``image`` is not usable ('' when it is); the reason names what is wrong."""
    if image is None:
        return "bad image: no image"
    if not isinstance(image, np.ndarray):
        return f"bad image: {type(image).__name__}, expected a numpy array"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        return f"bad image: shape {image.shape}"
    if image.size == 0 or min(image.shape[:2]) == 0:
        return f"bad image: empty {image.shape}"
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        return (f"image too small ({image.shape[1]}x{image.shape[0]}, need at least "
                f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE})")
    if image.dtype not in (np.uint8, np.uint16) and not np.issubdtype(image.dtype, np.floating):
        return f"bad image: unsupported dtype {image.dtype}"
    return ""


def normalise_channels(image: np.ndarray) -> np.ndarray:
    """HxWx1 -> HxW; RGBA -> RGB (alpha carries no texture); anything else unchanged."""
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return image[..., :3]
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Accept uint8, uint16 (mono16 cameras) and float in [0,1]; everything downstream is uint8."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def to_grey(image: np.ndarray) -> np.ndarray:
    """RGB -> grey (OpenCV weights); a grey image is returned as it is."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def image_to_tensor(image: np.ndarray, device="cpu", rgb: bool = False):
    """Convert an HxW / HxWx1 / HxWx3 (RGB) image, uint8, uint16 or float in [0,1] to [1,C,H,W] float32 in [0,1].

    ``rgb=True`` replicates a grey image to three channels (ALIKED was trained on RGB). The value is a division
    by the full scale, as the reference implementations' callers do, so inputs are bit-identical to theirs.
    """
    import torch  # only the learned backends need torch; image checks must not import it

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    if img.size == 0:
        raise ValueError(f"empty image (shape {img.shape})")
    if img.dtype == np.uint8:
        full_scale = 255.0
    elif img.dtype == np.uint16:
        full_scale = 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        full_scale = 1.0
    else:
        raise ValueError(f"unsupported image dtype {img.dtype} (uint8, uint16 or float in [0,1])")
    if rgb and img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    t = torch.from_numpy(np.ascontiguousarray(img)).to(device, non_blocking=True)
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    return t.float().div_(full_scale)


def check_tensor_image(image):
    """Validate one float image tensor for an extractor: [1,C,H,W] (or [C,H,W]), C 1 or 3, non-empty.

    Returns it as [1,C,H,W]; a ValueError says what is wrong (the extractors' one check, ALIKED's and XFeat's).
    """
    import torch  # only the learned extractors call this

    if not isinstance(image, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor image, got {type(image).__name__} (see extract_numpy)")
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        raise ValueError(f"expected one image [1,3,H,W] or [1,1,H,W], got shape {tuple(image.shape)}")
    if image.shape[-1] == 0 or image.shape[-2] == 0:
        raise ValueError(f"empty image (shape {tuple(image.shape)})")
    if not image.is_floating_point():
        raise ValueError(f"expected a float image in [0,1], got {image.dtype}")
    return image
