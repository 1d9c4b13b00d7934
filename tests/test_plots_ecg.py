"""12-lead ECG drawing: layouts, traces at the right place, masks, galleries, saliency overlays."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ecgstudy.plots import ecg, saliency

FS, T = 100.0, 1000


def _signal(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(T) / FS
    base = np.exp(-0.5 * (((t % 0.8) - 0.4) / 0.02) ** 2)  # one spike per 0.8 s
    return (rng.uniform(0.5, 1.5, (12, 1)) * base + 0.02 * rng.standard_normal((12, T))).astype(np.float32)


def test_clinical_layout_covers_every_lead_once_plus_rhythm_strip():
    panels = ecg.layout_panels(T, FS, "4x3")
    assert len(panels) == 13
    assert sorted(p.lead for p in panels[:12]) == list(range(12))
    rhythm = panels[12]
    assert ecg.LEADS[rhythm.lead] == "II" and (rhythm.start, rhythm.stop) == (0, T)
    # the four column blocks tile the 10 s: each lead shows its own 2.5 s at the matching paper position
    for p in panels[:12]:
        assert p.stop - p.start == T // 4
        assert p.x0 == pytest.approx(ecg.CAL_WIDTH_S + p.start / FS)
    assert {ecg.LEADS[p.lead] for p in panels[:12] if p.start == 2 * T // 4} == {"V1", "V2", "V3"}


def test_stacked_layout_and_unknown_layout():
    panels = ecg.layout_panels(T, FS, "12x1", row_height_mv=2.0)
    assert [p.lead for p in panels] == list(range(12))
    assert all((p.start, p.stop) == (0, T) for p in panels)
    assert np.allclose(np.diff([p.y0 for p in panels]), -2.0)
    with pytest.raises(ValueError, match="layout"):
        ecg.layout_panels(T, FS, "6x2")


def test_traces_are_drawn_in_mv_at_their_panel():
    sig = _signal()
    ax = Figure().subplots()
    panels = ecg.draw_ecg(ax, sig, FS, layout="4x3")
    v1 = next(p for p in panels if ecg.LEADS[p.lead] == "V1")
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == v1.stop - v1.start]
    match = [ln for ln in lines if np.isclose(ln.get_xdata()[0], v1.x0)
             and np.allclose(ln.get_ydata(), v1.y0 + sig[6, v1.start:v1.stop])]
    assert len(match) == 1
    labels = {t.get_text() for t in ax.texts}
    assert set(ecg.LEADS) <= labels
    assert ax.get_aspect() == pytest.approx(ecg.GAIN_MM_MV / ecg.PAPER_SPEED_MM_S)


def test_missing_lead_is_labelled_not_drawn():
    sig = _signal()
    sig[4] = np.nan  # aVL absent
    ax = Figure().subplots()
    ecg.draw_ecg(ax, sig, FS, layout="12x1")
    assert any(t.get_text() == "lead missing" for t in ax.texts)
    n_traces = sum(len(ln.get_xdata()) == T for ln in ax.get_lines())
    assert n_traces == 11


def test_mask_runs_and_outlines():
    row = np.zeros(20, bool)
    row[2:5] = True
    row[10] = True
    row[18:] = True
    assert ecg._mask_runs(row) == [(2, 5), (10, 11), (18, 20)]
    mask = np.zeros((12, T), bool)
    mask[7, 300:400] = True  # V2, 3-4 s
    mask[8, 320:380] = True  # V3
    ax = Figure().subplots()
    ecg.draw_ecg(ax, _signal(), FS, layout="12x1", mask=mask, saliency=np.abs(_signal(1)))
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == 2
    assert sorted((round(b.get_x() - ecg.CAL_WIDTH_S, 6), round(b.get_width(), 6)) for b in boxes) == [
        (3.0, 1.0), (3.2, 0.6)]
    assert len(ax.images) == 12  # one heat band per lead


def test_shape_errors():
    ax = Figure().subplots()
    with pytest.raises(ValueError, match=r"\(12, n_samples\)"):
        ecg.draw_ecg(ax, np.zeros((8, T)), FS)
    with pytest.raises(ValueError, match="mask"):
        ecg.draw_ecg(ax, _signal(), FS, mask=np.zeros((12, 10), bool))


def test_figures_are_written(tmp_path):
    sig = _signal()
    mask = np.zeros((12, T), bool)
    mask[7, 300:400] = True
    paths = [
        ecg.plot_ecg(sig, FS, tmp_path / "single.png", title="rec 1: NORM"),
        ecg.plot_gallery([sig, _signal(1), _signal(2)], FS, ["NORM", "CLBBB", "LVH"], tmp_path / "sub" / "gallery.png"),
        ecg.plot_saliency_ecg(sig, FS, _signal(3), mask, tmp_path / "saliency.png", title="rec 1: ASMI"),
    ]
    for path in paths:
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="titles"):
        ecg.plot_gallery([sig], FS, ["a", "b"], tmp_path / "bad.png")


def test_palette_png_is_smaller_and_looks_the_same(tmp_path):
    from PIL import Image

    fig = ecg._saliency_figure(_signal(), FS, _signal(3), None, title="x", scale=0.5)
    full = ecg.save_figure(fig, tmp_path / "full.png", palette=False)
    small = ecg.save_figure(fig, tmp_path / "small.png")
    assert small.stat().st_size < full.stat().st_size / 2
    a = np.asarray(Image.open(full).convert("RGB"), dtype=float)
    b = np.asarray(Image.open(small).convert("RGB"), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 3.0  # mean error under 3 of 255 grey levels


def test_gallery_panels_carry_their_titles():
    fig = ecg._gallery_figure([_signal(), _signal(1), _signal(2)], FS, ["NORM", "CLBBB", "LVH"], ncols=2,
                              layout="4x3", panel_width_in=5.0)
    visible = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title(loc="left") for a in visible] == ["NORM", "CLBBB", "LVH"]
    assert len(fig.axes) == 4  # 2 x 2 grid, the fourth hidden


def test_saliency_score_bars():
    summary = pd.DataFrame({"method": ["integrated_gradients", "random"], "enrichment": [3.0, 1.0],
                            "enrichment_lo": [2.5, 0.9], "enrichment_hi": [3.5, 1.1], "auroc": [0.8, 0.5],
                            "pointing_hit_rate": [0.6, 0.1]})
    fig = saliency._scores_figure(summary, ("pointing_hit_rate", "enrichment", "auroc"))
    heights = [p.get_height() for p in fig.axes[1].patches]
    assert heights == [3.0, 1.0]
