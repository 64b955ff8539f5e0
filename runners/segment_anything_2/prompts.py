"""The prompt text parts of /segment-anything-2: JSON texts parsed and their shapes checked before the image is
decoded (contract 3.12, 4.7, Q39), so every caller error is a 400 with a message that names the field.

Shapes accepted (sam2's `SAM2ImagePredictor.predict`, one object or B objects):
- point_coords: N x 2, or B x N x 2 (B objects); point_labels: N, or B x N, the same N (and B).
- box: 4, or B x 4 (XYXY); with points too, B must match.
- mask_input: 1 x 256 x 256 (low-resolution logits from an earlier call's `logits`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from runner_sdk import BadRequest

MASK_SIDE = 256
LABELS_REQUIRED = "Error during model execution: point_labels must be supplied if point_coords is supplied."


@dataclass
class Prompts:
    """Validated prompts, all float32/int32 numpy arrays with a leading object axis (B), or None.

    Attributes:
        points: B x N x 2 pixels (or [0, 1] when not normalising). labels: B x N.
        boxes: B x 4. mask: 1 x 256 x 256. batched: the caller sent B x ... shapes (the answer keeps B).
    """

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    boxes: np.ndarray | None = None
    mask: np.ndarray | None = None
    batched: bool = False

    @property
    def objects(self) -> int:
        """B: how many objects the prompts describe (1 without any prompt)."""
        for a in (self.points, self.boxes):
            if a is not None:
                return int(a.shape[0])
        return 1


def parse_json_field(name: str, text: str | None):
    """The JSON value of a prompt text part; None when absent or `""` (as upstream treats an empty part).

    Args:
        name: the part's name, for the message. text: the part's text.
    Returns:
        The parsed value, or None.
    Raises:
        BadRequest: `Error parsing JSON for <name>: <json error>` (upstream's message).
    """
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"Error parsing JSON for {name}: {exc}") from None


def _array(name: str, value, dims: tuple[int, ...], what: str) -> np.ndarray:
    """`value` as a float64 array of one of `dims` ranks, finite, non-empty; 400 naming `what` otherwise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"Invalid {name}: expected {what} of numbers.") from None
    if arr.ndim not in dims or arr.size == 0:
        raise BadRequest(f"Invalid {name}: expected {what}, got shape {list(arr.shape)}.")
    if not np.isfinite(arr).all():
        raise BadRequest(f"Invalid {name}: every value must be a finite number.")
    return arr


def _points(coords, labels) -> tuple[np.ndarray, np.ndarray, bool]:
    pts = _array("point_coords", coords, (2, 3), "an Nx2 (or BxNx2) array")
    if pts.shape[-1] != 2:
        raise BadRequest(f"Invalid point_coords: expected an Nx2 (or BxNx2) array, got shape {list(pts.shape)}.")
    if labels is None:
        raise BadRequest(LABELS_REQUIRED)
    lab = _array("point_labels", labels, (pts.ndim - 1,), "an array of one label per point")
    if lab.shape != pts.shape[:-1]:
        raise BadRequest(f"Invalid point_labels: expected shape {list(pts.shape[:-1])} (one label per point), "
                         f"got {list(lab.shape)}.")
    if not np.isin(lab, (-1, 0, 1)).all():
        raise BadRequest("Invalid point_labels: labels are 1 (foreground), 0 (background) or -1 (ignored).")
    batched = pts.ndim == 3
    if not batched:
        pts, lab = pts[None], lab[None]
    return pts.astype(np.float32), lab.astype(np.int32), batched


def parse_prompts(point_coords: str | None, point_labels: str | None, box: str | None,
                  mask_input: str | None, normalize_coords: bool = True) -> Prompts:
    """Parse the four JSON texts (in the contract's order), then check their shapes together.

    Args:
        point_coords, point_labels, box, mask_input: the text parts (None or "" when absent).
        normalize_coords: coordinates are pixels (True) or already in [0, 1] (False, then checked).
    Returns:
        The validated prompts.
    Raises:
        BadRequest: invalid JSON, a wrong shape, non-finite values, labels missing, or object counts
            that differ between points and boxes.
    """
    values = {name: parse_json_field(name, text) for name, text in
              (("point_coords", point_coords), ("point_labels", point_labels), ("box", box),
               ("mask_input", mask_input))}
    prompts = Prompts()
    if values["point_coords"] is not None:
        prompts.points, prompts.labels, prompts.batched = _points(values["point_coords"], values["point_labels"])
    if values["box"] is not None:
        boxes = _array("box", values["box"], (1, 2), "a length 4 array (or Bx4)")
        if boxes.shape[-1] != 4:
            raise BadRequest(f"Invalid box: expected a length 4 array (or Bx4), got shape {list(boxes.shape)}.")
        prompts.batched = prompts.batched or boxes.ndim == 2
        prompts.boxes = (boxes if boxes.ndim == 2 else boxes[None]).astype(np.float32)
        if prompts.points is not None and prompts.points.shape[0] != prompts.boxes.shape[0]:
            raise BadRequest(f"Invalid box: {prompts.boxes.shape[0]} boxes for {prompts.points.shape[0]} point "
                             "sets; give one box per object.")
    if values["mask_input"] is not None:
        mask = _array("mask_input", values["mask_input"], (3,), "a 1x256x256 array")
        if mask.shape != (1, MASK_SIDE, MASK_SIDE):
            raise BadRequest(f"Invalid mask_input: expected a 1x256x256 array, got shape {list(mask.shape)}.")
        prompts.mask = mask.astype(np.float32)
    if not normalize_coords:
        for name, arr in (("point_coords", prompts.points), ("box", prompts.boxes)):
            if arr is not None and not ((arr >= 0) & (arr <= 1)).all():
                raise BadRequest(f"Invalid {name}: with normalize_coords=false coordinates must lie in [0, 1].")
    return prompts


def printed(values: np.ndarray) -> str:
    """Python's printed form of a nested list (`str(arr.tolist())`), as upstream writes each response field.

    Printed one innermost row at a time: one `str()` of a whole 3x256x256 logits list holds the GIL for
    ~100 ms, which stalls /health on the event loop; rows let other threads run in between.

    Args:
        values: a finite float array (float32 values print at full double precision, e.g. -1.232093334197998).
    Returns:
        The text, identical to `str(values.tolist())`; it parses as JSON.
    """
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    if values.ndim <= 1:
        return str(values.tolist())
    return "[" + ", ".join(printed(row) for row in values) + "]"
