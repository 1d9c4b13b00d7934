"""12-lead ECG drawing on millimetre paper: single ECGs, galleries, and saliency overlays (the saliency
score and lead-share charts are in :mod:`ecgstudy.plots.saliency`).

Traces are drawn in data units of seconds (x) and millivolts (y) on an axes whose aspect ratio mimics
ECG paper at 25 mm/s and 10 mm/mV: small squares of 1 mm (0.04 s x 0.1 mV), large squares of 5 mm
(0.2 s x 0.5 mV). Two layouts:

- ``"4x3"``: the clinical printout, four columns of 2.5 s (I/II/III, aVR/aVL/aVF, V1-V3, V4-V6) and a
  10 s rhythm strip of lead II below;
- ``"12x1"``: twelve stacked rows, each lead over the whole recording (used for saliency maps, so every
  lead's attribution and ground-truth mask is visible over the full 10 s).

Signals are arrays of shape (12, n_samples) at ``fs`` Hz in mV with leads in the standard order I, II,
III, aVR, aVL, aVF, V1-V6. :func:`draw_ecg` draws onto a given axes; the ``plot_*`` functions write one
PNG each and return its path. Figures are built with :class:`matplotlib.figure.Figure` directly (agg
canvas, no pyplot state).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ecgstudy.data.leads import LEADS

#: Standard lead order of every signal array in the study.
#: Clinical 4x3 printout: rows of lead names per column block (column c shows seconds [2.5c, 2.5c+2.5)).
CLINICAL_ROWS: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
PAPER_SPEED_MM_S = 25.0  # standard paper speed
GAIN_MM_MV = 10.0  # standard gain
MINOR_S, MINOR_MV = 0.04, 0.1  # 1 mm small square
MAJOR_S, MAJOR_MV = 0.2, 0.5  # 5 mm large square
CAL_WIDTH_S = 0.4  # room left of each row for the 1 mV calibration pulse
GRID_MINOR_COLOUR = "#f7d4d4"
GRID_MAJOR_COLOUR = "#eaa0a0"
TRACE_COLOUR = "#111111"
MASK_COLOUR = "#1565c0"  # ground-truth outline: blue stands out against the red heat map
DPI = 120  # keeps the HTML report a few MB
#: Transparent-to-red heat map for attributions (zero attribution leaves the paper visible).
SALIENCY_CMAP = LinearSegmentedColormap.from_list(
    "saliency",
    [(1.0, 1.0, 1.0, 0.0), (1.0, 0.85, 0.3, 0.55), (0.95, 0.45, 0.1, 0.7), (0.8, 0.0, 0.05, 0.8)],
)


@dataclass(frozen=True)
class Panel:
    """Where one lead segment sits on the paper.

    Samples ``start:stop`` of lead ``lead`` are drawn from x = ``x0`` seconds with baseline y = ``y0`` mV,
    inside a band of height ``height`` mV centred on the baseline.
    """

    lead: int
    start: int
    stop: int
    x0: float
    y0: float
    height: float


def layout_panels(n_samples: int, fs: float, layout: str = "4x3", rhythm_lead: str = "II",
                  row_height_mv: float | None = None) -> list[Panel]:
    """Place the leads of a (12, n_samples) recording at ``fs`` Hz on the paper.

    Parameters
    ----------
    n_samples, fs : length of the recording in samples and its sampling rate in Hz.
    layout : ``"4x3"`` (clinical, plus a rhythm strip) or ``"12x1"`` (stacked full-length rows).
    rhythm_lead : lead drawn as the 10 s rhythm strip of the 4x3 layout.
    row_height_mv : height of one row in mV (default 3.0 for 4x3, 2.5 for 12x1).

    Returns
    -------
    list of Panel, top row first.
    """
    if layout == "4x3":
        height = row_height_mv or 3.0
        col = n_samples // 4
        panels = []
        for r, names in enumerate(CLINICAL_ROWS):
            for c, name in enumerate(names):
                stop = n_samples if c == 3 else (c + 1) * col
                panels.append(Panel(LEADS.index(name), c * col, stop, CAL_WIDTH_S + c * col / fs,
                                    -(r + 0.5) * height, height))
        panels.append(Panel(LEADS.index(rhythm_lead), 0, n_samples, CAL_WIDTH_S, -3.5 * height, height))
        return panels
    if layout == "12x1":
        height = row_height_mv or 2.5
        return [Panel(i, 0, n_samples, CAL_WIDTH_S, -(i + 0.5) * height, height) for i in range(len(LEADS))]
    raise ValueError(f"unknown ECG layout {layout!r}; use '4x3' or '12x1'")


def _draw_grid(ax: Axes, x1: float, y0: float, y1: float, minor: bool) -> None:
    """Millimetre paper over x in [0, x1] s and y in [y0, y1] mV (y0 < y1)."""
    def lines(step: float, lo: float, hi: float) -> np.ndarray:
        first = np.ceil(lo / step - 1e-9) * step
        return np.arange(first, hi + 1e-9, step)

    for step_s, step_mv, colour, width in (
        (MINOR_S, MINOR_MV, GRID_MINOR_COLOUR, 0.35),
        (MAJOR_S, MAJOR_MV, GRID_MAJOR_COLOUR, 0.7),
    ):
        if step_s == MINOR_S and not minor:
            continue
        xs, ys = lines(step_s, 0.0, x1), lines(step_mv, y0, y1)
        segs = [((x, y0), (x, y1)) for x in xs] + [((0.0, y), (x1, y)) for y in ys]
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=width, zorder=0))


def _mask_runs(mask_row: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, stop) sample runs where a boolean row is True."""
    padded = np.concatenate([[False], mask_row.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def draw_ecg(ax: Axes, signal: np.ndarray, fs: float, *, layout: str = "4x3", rhythm_lead: str = "II",
             row_height_mv: float | None = None, grid: str = "mm", saliency: np.ndarray | None = None,
             mask: np.ndarray | None = None, linewidth: float = 0.7, label_size: float = 8.0,
             saliency_scale: float | None = None) -> list[Panel]:
    """Draw one 12-lead ECG onto ``ax`` as on ECG paper.

    Parameters
    ----------
    ax : target axes (its limits, aspect and ticks are set here).
    signal : array of shape (12, n_samples) at ``fs`` Hz, mV; an all-NaN lead is drawn as "missing".
    fs : sampling rate in Hz.
    layout, rhythm_lead, row_height_mv : see :func:`layout_panels`.
    grid : ``"mm"`` (1 mm and 5 mm squares), ``"major"`` (5 mm squares only, for small panels) or ``"none"``.
    saliency : optional non-negative attribution map of shape (12, n_samples), drawn as a heat band behind
        each lead segment (scaled to ``saliency_scale``, default its 99.5th percentile).
    mask : optional boolean map of shape (12, n_samples) (ground-truth signature), outlined in blue.
    linewidth, label_size : trace width in points and lead-label font size.

    Returns
    -------
    The panels drawn (for callers adding annotations).
    """
    signal = np.asarray(signal, dtype=float)
    if signal.ndim != 2 or signal.shape[0] != len(LEADS):
        raise ValueError(f"expected a signal of shape (12, n_samples), got {signal.shape}")
    n = signal.shape[1]
    for name, arr in (("saliency", saliency), ("mask", mask)):
        if arr is not None and np.shape(arr) != signal.shape:
            raise ValueError(f"{name} has shape {np.shape(arr)}, expected the signal's {signal.shape}")
    panels = layout_panels(n, fs, layout, rhythm_lead, row_height_mv)
    x1 = CAL_WIDTH_S + n / fs
    y_top = max(p.y0 + p.height / 2 for p in panels)
    y_bottom = min(p.y0 - p.height / 2 for p in panels)
    if grid != "none":
        _draw_grid(ax, x1, y_bottom, y_top, minor=grid == "mm")

    if saliency is not None:
        sal = np.nan_to_num(np.asarray(saliency, dtype=float), nan=0.0)
        scale = saliency_scale or float(np.percentile(sal, 99.5)) or 1.0
        sal = np.clip(sal / scale, 0.0, 1.0)
        for p in panels:
            ax.imshow(sal[p.lead : p.lead + 1, p.start : p.stop], cmap=SALIENCY_CMAP, vmin=0.0, vmax=1.0,
                      extent=(p.x0, p.x0 + (p.stop - p.start) / fs, p.y0 - p.height / 2, p.y0 + p.height / 2),
                      aspect="auto", interpolation="nearest", zorder=1)

    rows_done: set[float] = set()
    for p in panels:
        trace = signal[p.lead, p.start : p.stop]
        t = p.x0 + np.arange(p.stop - p.start) / fs
        if np.all(np.isnan(trace)):
            ax.text(p.x0 + 0.3, p.y0, "lead missing", fontsize=label_size * 0.9, color="0.45",
                    va="center", style="italic", zorder=4)
        else:
            ax.plot(t, p.y0 + trace, color=TRACE_COLOUR, linewidth=linewidth, zorder=3, solid_joinstyle="round")
        ax.text(p.x0 + 0.04, p.y0 + 0.42 * p.height, LEADS[p.lead], fontsize=label_size, fontweight="bold",
                va="top", ha="left", zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 0.6})
        if p.start > 0:  # lead-change tick between column blocks, as on a printout
            ax.plot([p.x0, p.x0], [p.y0 - 0.3, p.y0 + 0.3], color=TRACE_COLOUR, linewidth=linewidth, zorder=3)
        if p.y0 not in rows_done:  # 1 mV x 0.2 s calibration pulse at the start of each row
            rows_done.add(p.y0)
            cx = [0.05, 0.1, 0.1, 0.3, 0.3, 0.35]
            cy = [p.y0, p.y0, p.y0 + 1.0, p.y0 + 1.0, p.y0, p.y0]
            ax.plot(cx, cy, color=TRACE_COLOUR, linewidth=linewidth, zorder=3)
        if mask is not None:
            for a, b in _mask_runs(np.asarray(mask)[p.lead, p.start : p.stop]):
                ax.add_patch(Rectangle((p.x0 + a / fs, p.y0 - 0.46 * p.height), (b - a) / fs, 0.92 * p.height,
                                       fill=False, edgecolor=MASK_COLOUR, linewidth=1.3, zorder=4))

    ax.set_xlim(0.0, x1)
    ax.set_ylim(y_bottom, y_top)
    ax.set_aspect(GAIN_MM_MV / PAPER_SPEED_MM_S)  # 1 mV is 0.4 times as long as 1 s on paper
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(GRID_MAJOR_COLOUR)
    return panels


def _paper_size(n_samples: int, fs: float, layout: str, row_height_mv: float | None, scale: float,
                margins: bool = True) -> tuple[float, float]:
    """Figure size (inches) at which the paper is drawn ``scale`` times its real size (plus margins)."""
    panels = layout_panels(n_samples, fs, layout, row_height_mv=row_height_mv)
    height_mv = max(p.y0 + p.height / 2 for p in panels) - min(p.y0 - p.height / 2 for p in panels)
    width_mm = (CAL_WIDTH_S + n_samples / fs) * PAPER_SPEED_MM_S
    height_mm = height_mv * GAIN_MM_MV
    pad_w, pad_h = (0.3, 0.6) if margins else (0.0, 0.0)
    return scale * width_mm / 25.4 + pad_w, scale * height_mm / 25.4 + pad_h


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI, palette: bool = True) -> Path:
    """Write ``fig`` as PNG at ``path`` (folders created) and return the path.

    ``palette``: store 256 colours (Pillow's fast octree, no dithering) instead of full RGB. Millimetre
    grids, noisy traces and heat maps otherwise make each ECG PNG ~1 MB; the palette PNG is ~6x smaller
    with no visible change, which keeps the self-contained HTML report a few MB.
    """
    from PIL import Image  # matplotlib's own image dependency

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    if not palette:
        path.write_bytes(buffer.getvalue())
        return path
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            path, format="PNG", optimize=True)
    return path


def plot_ecg(signal: np.ndarray, fs: float, path: str | Path, *, title: str | None = None, layout: str = "4x3",
             rhythm_lead: str = "II", scale: float = 1.0, grid: str = "mm") -> Path:
    """One 12-lead ECG as a clinical printout, written to ``path`` (PNG); returns the path.

    Parameters
    ----------
    signal : array of shape (12, n_samples) at ``fs`` Hz, mV.
    fs : sampling rate in Hz.
    path : PNG file written.
    title : text above the tracing (e.g. record id and diagnoses).
    layout : ``"4x3"`` (with a lead II rhythm strip) or ``"12x1"``.
    scale : figure size relative to real paper size (1.0 = 25 mm/s, 10 mm/mV on screen at 1:1).
    grid : ``"mm"``, ``"major"`` or ``"none"``.
    """
    return save_figure(_ecg_figure(signal, fs, title=title, layout=layout, rhythm_lead=rhythm_lead, scale=scale,
                                   grid=grid), path)


def _ecg_figure(signal: np.ndarray, fs: float, *, title: str | None, layout: str, rhythm_lead: str, scale: float,
                grid: str) -> Figure:
    signal = np.asarray(signal)
    fig = Figure(figsize=_paper_size(signal.shape[-1], fs, layout, None, scale))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9 if title else 0.98))
    draw_ecg(ax, signal, fs, layout=layout, rhythm_lead=rhythm_lead, grid=grid)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.text(1.0, 1.01, "25 mm/s, 10 mm/mV", transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
            color="0.35")
    return fig


def plot_gallery(signals: Sequence[np.ndarray] | np.ndarray, fs: float, titles: Sequence[str], path: str | Path,
                 *, ncols: int = 2, layout: str = "4x3", panel_width_in: float = 7.0) -> Path:
    """A gallery of 12-lead ECGs, e.g. one per condition, written to ``path`` (PNG); returns the path.

    Parameters
    ----------
    signals : K arrays of shape (12, n_samples) at ``fs`` Hz, mV (or one array (K, 12, n_samples)).
    fs : sampling rate in Hz.
    titles : K panel titles (e.g. ``"CLBBB: complete left bundle branch block"``).
    path : PNG file written.
    ncols : panels per row.
    layout : ECG layout of each panel (see :func:`layout_panels`).
    panel_width_in : width of one panel in inches (the grid shows 5 mm squares only when panels are small).
    """
    return save_figure(_gallery_figure(signals, fs, titles, ncols=ncols, layout=layout,
                                       panel_width_in=panel_width_in), path)


def _gallery_figure(signals, fs: float, titles: Sequence[str], *, ncols: int, layout: str,
                    panel_width_in: float) -> Figure:
    signals = [np.asarray(s) for s in signals]
    if len(signals) != len(titles):
        raise ValueError(f"got {len(signals)} signals but {len(titles)} titles")
    if not signals:
        raise ValueError("plot_gallery needs at least one signal")
    nrows = -(-len(signals) // ncols)
    w, h = _paper_size(signals[0].shape[-1], fs, layout, None, 1.0, margins=False)
    panel_h = panel_width_in * h / w + 0.3  # paper plus room for the title
    fig = Figure(figsize=(panel_width_in * ncols, panel_h * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    grid = "mm" if panel_width_in >= 9 else "major"
    for ax, sig, title in zip(axes.flat, signals, titles):
        draw_ecg(ax, sig, fs, layout=layout, grid=grid, linewidth=0.55, label_size=6.5)
        ax.set_title(title, fontsize=8.5, loc="left", pad=3)
    for ax in list(axes.flat)[len(signals):]:
        ax.set_visible(False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.3 / (panel_h * nrows), wspace=0.03,
                        hspace=0.3 / panel_h)
    return fig


def plot_saliency_ecg(signal: np.ndarray, fs: float, saliency: np.ndarray, mask: np.ndarray | None,
                      path: str | Path, *, title: str | None = None, scale: float = 0.8) -> Path:
    """A 12-lead ECG (12 stacked full-length rows) with an attribution heat map and the true signature,
    written to ``path`` (PNG); returns the path.

    Parameters
    ----------
    signal : array of shape (12, n_samples) at ``fs`` Hz, mV.
    fs : sampling rate in Hz.
    saliency : attribution of shape (12, n_samples); its magnitude is drawn (e.g. |integrated gradients|).
    mask : boolean ground-truth signature mask of shape (12, n_samples), outlined in blue (or None).
    path : PNG file written.
    title : text above the tracing (record, condition, method).
    scale : figure size relative to real paper size.
    """
    return save_figure(_saliency_figure(signal, fs, saliency, mask, title=title, scale=scale), path)


def _saliency_figure(signal: np.ndarray, fs: float, saliency: np.ndarray, mask: np.ndarray | None, *,
                     title: str | None, scale: float) -> Figure:
    signal = np.asarray(signal)
    w, h = _paper_size(signal.shape[-1], fs, "12x1", 2.0, scale)
    fig = Figure(figsize=(w + 0.9, h))
    ax = fig.add_axes((0.01, 0.01, 0.98 - 0.9 / (w + 0.9), 1 - 0.55 / h))
    sal = np.abs(np.nan_to_num(np.asarray(saliency, dtype=float)))
    scale_value = float(np.percentile(sal, 99.5)) or 1.0
    draw_ecg(ax, signal, fs, layout="12x1", row_height_mv=2.0, saliency=sal, mask=mask, grid="major",
             saliency_scale=scale_value, linewidth=0.6)  # 5 mm squares only: the heat map stays readable
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    cax = fig.add_axes((1 - 0.75 / (w + 0.9), 0.3, 0.12 / (w + 0.9), 0.4))
    bar = fig.colorbar(ScalarMappable(cmap=SALIENCY_CMAP, norm=Normalize(0, 1)), cax=cax)
    bar.set_label("attribution (relative)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if mask is not None:
        ax.add_patch(Rectangle((0, 0), 0, 0, fill=False, edgecolor=MASK_COLOUR, linewidth=1.3,
                               label="true signature (simulator mask)"))
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, borderaxespad=0.2)
    return fig
