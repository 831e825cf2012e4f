"""The detection explorer: anchor matching and non-maximum suppression on one scene.

Two views of one image with its ground-truth boxes (chapter 15):

- **Anchor matching**: every anchor is positive (IoU with its best box >= the foreground
  threshold, or claimed by a box as its best anchor), negative (best IoU < the background
  threshold) or ignored (in between), exactly as ``cnnbook.detection.match_anchors``
  decides. Two sliders move the thresholds.
- **NMS**: scored boxes above a score threshold go through greedy non-maximum suppression
  at an IoU threshold (two more sliders), one step at a time: keep the best remaining box,
  suppress every later box overlapping it by more than the threshold, repeat.

Python computes every number: the sliders move in steps of ``1 / steps``, and for each
anchor, box and pair of boxes the data hold a *level*, the number of slider positions
at which a comparison holds (an anchor's level: at how many foreground thresholds it is
positive; a pair's: at how many IoU thresholds the first suppresses the second). The
comparisons are the library's own (``match_anchors`` is called at every threshold; the
pair IoUs are ``box_iou``'s, compared in float64 as ``nms`` and torchvision compare them),
so the script only counts and runs the greedy loop over these integers, and
``DetectionExplorer.matching`` / ``nms_trace`` give the same answers in Python for the tests.

Where no detector is at hand, ``stand_in_detections`` makes scored boxes from the anchors
(jittered, scored by their IoU with the truth plus noise); the figure says so.

Example::

    from cnnbook.detection import make_anchors
    from cnnbook.scenes import make_scenes
    from cnnbook.widgets.detection_explorer import DetectionExplorer
    scenes = make_scenes(1, seed=3)
    DetectionExplorer(scenes.images[0], scenes.boxes[0], make_anchors(8, 8, (12.0, 20.0, 32.0)))
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cnnbook._checks import check_int
from cnnbook.detection import _check_boxes, box_iou, match_anchors
from cnnbook.photos import photo_as_float
from cnnbook.widgets._html import StaticFallback, pack_uint, render_widget

__all__ = ["MAX_BOXES", "PALETTE", "DetectionExplorer", "stand_in_detections"]

MAX_BOXES = 400  # anchors and scored boxes each; the pair table holds MAX_BOXES ** 2 bytes
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
STAND_IN_NOTE = (
    "Stand-in scores, not a trained network: every anchor jittered by seeded noise and "
    "scored by its IoU with the nearest true box plus noise."
)


def stand_in_detections(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    image_size: tuple[int, int],
    seed: int = 0,
    jitter: float = 1.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scored boxes that look like a detector's raw output, for when none is at hand.

    anchors: (A, 4), gt_boxes: (G, 4) xyxy; image_size: (H, W). Returns boxes (A, 4): each
    anchor moved by Gaussian noise of ``jitter`` pixels per coordinate and clipped to the
    image, and scores (A,) in (0, 1): sigmoid(12 (IoU + 0.06 z) - 6), IoU being the box's
    best IoU with a true box (0 without boxes) and z standard normal noise. Seeded.
    """
    a = _check_boxes("anchors", anchors).float()
    g = _check_boxes("gt_boxes", gt_boxes).float()
    H, W = (check_int("image_size", v, minimum=1) for v in image_size)
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not jitter >= 0:
        raise ValueError(f"jitter must be a number >= 0, got {jitter!r}")
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    boxes = a + float(jitter) * torch.randn(a.shape, generator=gen)
    limit = torch.tensor([W, H, W, H], dtype=torch.float32)
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2])  # x2 >= x1 after clipping
    best = box_iou(boxes, g).max(dim=1).values if len(g) else torch.zeros(len(boxes))
    noise = torch.randn(len(boxes), generator=gen)
    return boxes, torch.sigmoid(12 * (best + 0.06 * noise) - 6)  # 0.5 at IoU 0.5


def _image_hwc(image: object) -> np.ndarray:
    """(H, W, 3) uint8 from a (3, H, W) tensor or an (H, W[, 3]) array in [0, 1] or uint8."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] == 3 and image.shape[2] != 3:
            image = image.transpose(1, 2, 0)
    values = photo_as_float(image)
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=2)
    H, W = values.shape[:2]
    if not (8 <= H <= 128 and 8 <= W <= 128):
        raise ValueError(f"image must be 8 to 128 pixels on each side, got {H} x {W}")
    return np.round(values * 255).astype(np.uint8)


def _rounded(boxes: torch.Tensor) -> list[list[float]]:
    return [[round(float(v), 2) for v in row] for row in boxes.tolist()]


class DetectionExplorer(StaticFallback):
    """Interactive figure: anchor matching and step-by-step NMS on one image.

    image: (3, H, W) tensor or (H, W, 3) array (floats in [0, 1] or uint8), 8 to 128
    pixels a side. gt_boxes: (G, 4) xyxy true boxes (G may be 0; zero-area boxes are
    fine: IoU 0). anchors: (A, 4) xyxy, 1 <= A <= 400. boxes, scores: (N, 4) and (N,)
    scored boxes for the NMS view (scores in [0, 1]); both None: ``stand_in_detections``
    of the anchors (seeded by ``seed``), labelled as such. gt_labels: (G,) ints, only
    for the legend with ``class_names`` (label -> name). The thresholds ``fg_iou``,
    ``bg_iou`` (<= fg_iou), ``score_threshold`` and ``nms_iou`` are the sliders' first
    positions and must be multiples of ``1 / steps`` in [0, 1].
    """

    def __init__(
        self,
        image: object,
        gt_boxes: torch.Tensor,
        anchors: torch.Tensor,
        boxes: torch.Tensor | None = None,
        scores: torch.Tensor | None = None,
        *,
        gt_labels: torch.Tensor | None = None,
        class_names: dict[int, str] | None = None,
        fg_iou: float = 0.5,
        bg_iou: float = 0.4,
        score_threshold: float = 0.5,
        nms_iou: float = 0.5,
        steps: int = 100,
        seed: int = 0,
        title: str | None = None,
    ) -> None:
        self.steps = check_int("steps", steps, minimum=1)
        if self.steps > 200:
            raise ValueError(f"steps must be <= 200, got {self.steps}")
        self.image = _image_hwc(image)
        H, W = self.image.shape[:2]
        self.gt_boxes = _check_boxes("gt_boxes", gt_boxes).float()
        self.anchors = _check_boxes("anchors", anchors).float()
        if not 1 <= len(self.anchors) <= MAX_BOXES:
            raise ValueError(f"anchors must hold 1 to {MAX_BOXES} boxes, got {len(self.anchors)}")
        self.gt_labels = self._check_labels(gt_labels, class_names)
        self.class_names = dict(class_names or {})
        if (boxes is None) != (scores is None):
            raise ValueError("boxes and scores must be given together (or both left out)")
        self.stand_in = boxes is None
        if boxes is None:
            boxes, scores = stand_in_detections(self.anchors, self.gt_boxes, (H, W), seed)
        self.boxes = _check_boxes("boxes", boxes).float()
        self.scores = self._check_scores(scores, len(self.boxes))
        self.k_fg = self._slider("fg_iou", fg_iou)
        self.k_bg = self._slider("bg_iou", bg_iou)
        if self.k_bg > self.k_fg:
            raise ValueError(f"bg_iou must be <= fg_iou, got bg_iou={bg_iou}, fg_iou={fg_iou}")
        self.k_score = self._slider("score_threshold", score_threshold)
        self.k_nms = self._slider("nms_iou", nms_iou)
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        self.title = title or "Anchors and non-maximum suppression on one scene"
        self.thresholds = [k / self.steps for k in range(self.steps + 1)]
        self._compute_levels()
        self.data = self._payload()

    # ------------------------------------------------------------------ argument checks

    def _slider(self, name: str, value: object) -> int:
        """The slider position of a threshold: k with value == k / steps."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
        k = round(float(value) * self.steps)
        if abs(k / self.steps - float(value)) > 1e-9:
            raise ValueError(f"{name} must be a multiple of 1/{self.steps}, got {value}")
        return k

    def _check_labels(self, labels: object, names: object) -> list[int] | None:
        if names is not None and not isinstance(names, dict):
            raise TypeError(f"class_names must be a dict label -> name, got {type(names).__name__}")
        if labels is None:
            return None
        lab = torch.as_tensor(labels)
        if lab.dtype.is_floating_point or lab.dtype == torch.bool or lab.ndim != 1:
            raise TypeError(f"gt_labels must be a 1-D tensor of integers, got {lab.dtype}")
        if len(lab) != len(self.gt_boxes):
            raise ValueError(f"gt_labels must have {len(self.gt_boxes)} entries, got {len(lab)}")
        return [int(v) for v in lab]

    @staticmethod
    def _check_scores(scores: object, n: int) -> torch.Tensor:
        s = torch.as_tensor(scores)
        if not s.dtype.is_floating_point:
            raise TypeError(f"scores must hold floats, got dtype {s.dtype}")
        if s.ndim != 1 or len(s) != n:
            raise ValueError(f"scores must have shape ({n},), got {tuple(s.shape)}")
        if n > MAX_BOXES:
            raise ValueError(f"boxes must hold at most {MAX_BOXES} boxes, got {n}")
        if torch.isnan(s).any() or (s < 0).any() or (s > 1).any():
            raise ValueError("scores must lie in [0, 1] (the score slider's range)")
        return s.float()

    # ------------------------------------------------------------------ numbers

    def _compute_levels(self) -> None:
        """How many slider positions each comparison holds at, compared as the library does."""
        g, a = self.gt_boxes, self.anchors
        if len(g):  # each anchor's best IoU, as match_anchors computes and compares it
            best = box_iou(g, a).max(dim=0).values
            level = sum((best >= t).long() for t in self.thresholds)
        else:
            level = torch.zeros(len(a), dtype=torch.int64)
        # claimed by a box as its best anchor: positive at any threshold, with the claim rule
        claimed = (match_anchors(a, g, 1.0, 1.0) >= 0) & (match_anchors(a, g, 1.0, 1.0, False) < 0)
        self.anchor_level_strict = level.numpy()  # positive at fg = t_k iff k < level
        self.anchor_level = torch.where(claimed, len(self.thresholds), level).numpy()
        self.anchor_gt = match_anchors(self.anchors, self.gt_boxes, 0.0, 0.0).numpy()
        grid = torch.tensor(self.thresholds, dtype=torch.float64)
        # the comparison a reader writes, boxes[scores > t], one threshold at a time
        self.score_level = sum((self.scores > t).long() for t in self.thresholds).numpy()
        iou = box_iou(self.boxes, self.boxes).double()  # (N, N), as nms compares it
        self.pair_level = (iou[..., None] > grid).sum(dim=-1).numpy()
        self.order = torch.sort(self.scores, descending=True, stable=True).indices.numpy()

    def matching(self, fg_iou: float, bg_iou: float) -> dict:
        """What the figure shows for anchor matching at these slider positions.

        Returns ``status`` (A,) (the index of the matched box, -1 negative, -2 ignored, as
        ``match_anchors`` returns) and the counts ``positive``, ``negative``, ``ignored``
        and ``claimed`` (positive only because a box claims its best anchor).
        """
        i, j = self._slider("fg_iou", fg_iou), self._slider("bg_iou", bg_iou)
        if j > i:
            raise ValueError(f"bg_iou must be <= fg_iou, got bg_iou={bg_iou}, fg_iou={fg_iou}")
        positive = i < self.anchor_level
        negative = ~positive & (j >= self.anchor_level)
        status = np.where(positive, self.anchor_gt, np.where(negative, -1, -2))
        return {
            "status": status,
            "positive": int(positive.sum()),
            "negative": int(negative.sum()),
            "ignored": int((status == -2).sum()),
            "claimed": int((positive & (i >= self.anchor_level_strict)).sum()),
        }

    def nms_trace(self, score_threshold: float, iou_threshold: float) -> list[tuple[int, list]]:
        """Greedy NMS as the figure steps through it: [(kept box, boxes it suppresses), ...].

        Candidates are the boxes with score > ``score_threshold``, by decreasing score
        (ties: input order). Each step keeps the best remaining candidate and suppresses
        the later ones whose IoU with it is > ``iou_threshold``. The kept boxes, in order,
        are ``nms(boxes[c], scores[c], iou_threshold)`` mapped back to indices of ``boxes``.
        """
        ks, ki = (
            self._slider("score_threshold", score_threshold),
            self._slider("nms_iou", iou_threshold),
        )
        candidates = [int(b) for b in self.order if self.score_level[b] > ks]
        out, gone = set(), []
        for pos, b in enumerate(candidates):
            if b in out:
                continue
            victims = [c for c in candidates[pos + 1 :] if c not in out]
            victims = [c for c in victims if self.pair_level[b, c] > ki]
            out.update(victims)
            gone.append((b, victims))
        return gone

    def _payload(self) -> dict:
        H, W = self.image.shape[:2]
        return {
            "title": self.title,
            "height": H,
            "width": W,
            "scale": max(2, round(256 / max(H, W))),
            "image": pack_uint(self.image),
            "gt": _rounded(self.gt_boxes),
            "gt_names": None
            if self.gt_labels is None
            else [self.class_names.get(v, str(v)) for v in self.gt_labels],
            "palette": list(PALETTE),
            "anchors": _rounded(self.anchors),
            "anchor_level": pack_uint(self.anchor_level),
            "anchor_level_strict": pack_uint(self.anchor_level_strict),
            "anchor_gt": [int(v) for v in self.anchor_gt],
            "boxes": _rounded(self.boxes),
            "scores": [round(float(s), 3) for s in self.scores],
            "order": [int(v) for v in self.order],
            "score_level": pack_uint(self.score_level),
            "pair_level": pack_uint(self.pair_level),
            "steps": self.steps,
            "start": {"fg": self.k_fg, "bg": self.k_bg, "score": self.k_score, "nms": self.k_nms},
            "source": STAND_IN_NOTE if self.stand_in else "Scored boxes given by the caller.",
        }

    def to_html(self) -> str:
        """The figure as one self-contained HTML string (inline style, script and data)."""
        return render_widget(
            widget="detection-explorer",
            data=self.data,
            label=(
                f"{self.title}. Interactive figure: move the IoU thresholds to see which "
                "anchors become positive, negative or ignored, and step through NMS."
            ),
            js_file="detection_explorer.js",
            css_file="detection_explorer.css",
            entry="mountDetectionExplorer",
            static_png=self.static_png(),
        )

    def _static_figure(self) -> Figure:
        """The first state: matched anchors (left) and the boxes NMS keeps (right)."""
        fg, bg = self.k_fg / self.steps, self.k_bg / self.steps
        st, nt = self.k_score / self.steps, self.k_nms / self.steps
        match = self.matching(fg, bg)
        trace = self.nms_trace(st, nt)
        figure = Figure(figsize=(6.8, 3.8))
        figure.suptitle(self.title, fontsize=10, weight="bold", x=0.02, ha="left")
        axes = [figure.add_axes((0.02 + 0.5 * k, 0.16, 0.46, 0.7)) for k in range(2)]
        for ax in axes:
            ax.imshow(self.image, extent=(0, self.image.shape[1], self.image.shape[0], 0))
            ax.set_axis_off()
            for box in self.gt_boxes.tolist():
                _box(ax, box, "white", 2.0)
        for a, s in zip(self.anchors.tolist(), match["status"], strict=True):
            if s >= 0:
                _box(axes[0], a, PALETTE[s % len(PALETTE)], 1.2)
            elif s == -2:
                _box(axes[0], a, "#dddddd", 0.8, "--")
        for kept, _ in trace:
            _box(axes[1], self.boxes[kept].tolist(), PALETTE[0], 1.8)
        axes[0].set_title(
            f"IoU \u2265 {fg:.2f}: {match['positive']} positive, {match['ignored']} ignored "
            f"(dashed), {match['negative']} negative",
            fontsize=8,
        )
        n_cand = int((self.score_level > self.k_score).sum())
        axes[1].set_title(
            f"NMS at IoU {nt:.2f}: {len(trace)} of {n_cand} boxes with score > {st:.2f} kept",
            fontsize=8,
        )
        figure.text(0.02, 0.04, self.data["source"], fontsize=7.5, wrap=True)
        return figure

    def __repr__(self) -> str:
        return (
            f"DetectionExplorer(image {self.image.shape[0]}x{self.image.shape[1]}, "
            f"{len(self.gt_boxes)} true boxes, {len(self.anchors)} anchors, "
            f"{len(self.boxes)} scored boxes{' (stand-in)' if self.stand_in else ''})"
        )


def _box(ax, box: list[float], colour: str, lw: float, style: str = "-") -> None:
    x1, y1, x2, y2 = box
    ax.add_patch(
        Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, lw=lw, ls=style)
    )
