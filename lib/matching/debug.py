"""Pictures of what the matcher did, for --debug-dir."""
from __future__ import annotations

import cv2
import numpy as np

from ..draw import colour, outline_instances, text_strip
from .config import Event, MatchResult


def transform_parts(matrix: np.ndarray) -> tuple[float, float, bool]:
    """(scale, rotation in degrees in (-180, 180], mirrored) of a 2x3 transform source -> copy;
    a mirrored one is read as a flip about the vertical axis, then the rotation."""
    linear = np.asarray(matrix, np.float64)[:, :2]
    mirrored = bool(np.linalg.det(linear) < 0)
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    if mirrored:
        linear = linear @ np.diag([-1.0, 1.0])
    return scale, float(np.degrees(np.arctan2(linear[1, 0], linear[0, 0]))), mirrored


def describe_operation(matrix: np.ndarray) -> str:
    """What a transform did, for people: 'moved', 'rotated by 90 degrees', 'mirrored, scaled by
    0.80' (a rotation under 2 degrees and a scale within 3 % of 1 are left unsaid)."""
    scale, angle, mirrored = transform_parts(matrix)
    parts = (["mirrored"] if mirrored else []) + ([f"rotated by {angle:.0f} degrees"] if abs(angle) >= 2 else [])
    parts += [f"scaled by {scale:.2f}"] if abs(scale - 1) > 0.03 else []
    return ", ".join(parts) or "moved"


def describe_event(event: Event) -> str:
    """'keypoints, score 0.98, detail 0.95, 31 inliers, scale 1.00, +30 deg, mirrored' for logs and
    debug images."""
    scale, angle, mirrored = transform_parts(event.matrix)
    return (f"{event.stage}, score {event.score:.2f}, detail {event.detail:.2f}, {len(event.inliers)} inliers, "
            f"scale {scale:.2f}, {angle:+.0f} deg" + (", mirrored" if mirrored else ""))


def debug_image(image: np.ndarray, result: MatchResult, max_lines: int = 60) -> np.ndarray:
    """An RGB picture of what the matcher did: left, the keypoints (gray) and the inlier pairs
    of each event scoring at least the threshold (source ring -> copy dot, one colour per
    event); right, the final instances and the panels (orange); below, those events, the
    best-scoring candidates below the threshold, and the rejected ones with their reasons."""
    shown = sorted([e for e in result.events if e.score >= result.threshold], key=lambda e: -e.score)
    below = sorted([e for e in result.events if e.score < result.threshold], key=lambda e: -e.score)
    rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    zoom = 2 if max(rgb.shape[:2]) < 400 else 1
    base = cv2.resize(rgb, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST) if zoom > 1 else rgb.copy()
    left = (base * 0.6 + 100).astype(np.uint8)
    for x, y in result.keypoints * zoom:
        cv2.circle(left, (int(x), int(y)), 1, (90, 90, 90), -1)
    for k, event in enumerate(shown):
        ink = colour(k)
        pick = np.linspace(0, len(event.inliers) - 1, min(max_lines, len(event.inliers))).astype(int)
        for (ax, ay), (bx, by) in event.inliers[pick] * zoom:
            cv2.line(left, (int(ax), int(ay)), (int(bx), int(by)), ink, 1, cv2.LINE_AA)
            cv2.circle(left, (int(ax), int(ay)), 3, ink, 1)
            cv2.circle(left, (int(bx), int(by)), 2, ink, -1)
    instances = result.instances
    right = outline_instances(base, instances)
    for y0, x0, y1, x1 in result.panels:
        cv2.rectangle(right, (x0 * zoom, y0 * zoom), (x1 * zoom - 1, y1 * zoom - 1), (0, 160, 255), 1)
    lines = [f"{result.n_keypoints} keypoints; pairs " + ", ".join(f"{k} {v}" for k, v in result.n_pairs.items())
             + f"; {len(instances)} instance(s)" + (f"; matched at {result.scale:.2f}x" if result.scale < 1 else "")]
    lines += [f"event {k + 1}: {describe_event(e)}" for k, e in enumerate(shown)]
    lines += [f"below {result.threshold:.2f}: {describe_event(e)}" + (f" ({e.reason})" if e.reason else "")
              for e in below[:4]]
    if len(below) > 4:
        lines.append(f"... and {len(below) - 4} more candidates below {result.threshold:.2f}")
    reasons: dict[str, int] = {}
    for stage, reason in result.rejected:
        reasons[f"{stage}: {reason}"] = reasons.get(f"{stage}: {reason}", 0) + 1
    lines += [f"rejected {n}x {reason}" if n > 1 else f"rejected {reason}" for reason, n in reasons.items()]
    gap = np.full((base.shape[0], 8, 3), 255, np.uint8)
    top = np.hstack([left, gap, right])
    inks = [colour(i - 1) if 0 < i <= len(shown) else (0, 0, 0) for i in range(len(lines))]
    return np.vstack([top, text_strip(lines, top.shape[1], inks)])
