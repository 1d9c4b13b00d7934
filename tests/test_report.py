"""HTML report: stage order, embedded figures, captions, tables, escaping, params and provenance."""

import base64
import html
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from matplotlib.figure import Figure

from ecgstudy import config
from ecgstudy.stages import report


def _png(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(2, 1.5))
    fig.subplots().plot([0, 1], [0, 1], color=colour)
    fig.savefig(path, dpi=50)
    return path


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    (r / "reports" / "metrics").mkdir(parents=True)
    (r / "reports" / "metrics" / "latent.json").write_text(json.dumps({
        "pretrained": {"knn_macro_auroc": 0.8123, "knn_site_balanced_accuracy": 0.51},
        "random_init": {"knn_macro_auroc": 0.7012, "knn_site_balanced_accuracy": 0.49},
        "n_probe": 2000, "task": "all", "nested": {"deep": {"x": 1}}, "codes": ["IMI", "LVH"],
    }))
    (r / "reports" / "metrics" / "curate.json").write_text(json.dumps({"n_records": 3000}))
    (r / "reports" / "metrics" / "extra_stage.json").write_text(json.dumps({"value": 1}))
    _png(r / "reports" / "figures" / "latent" / "umap.png", "red")
    _png(r / "reports" / "figures" / "saliency" / "saliency_example_10.png", "blue")
    _png(r / "reports" / "figures" / "saliency" / "saliency_example_2.png", "green")
    _png(r / "reports" / "figures" / "saliency" / "odd_name.png", "black")
    tables = r / "reports" / "tables" / "saliency"
    tables.mkdir(parents=True)
    pd.DataFrame({"method": ["integrated_gradients", "<script>alert(1)</script>"],
                  "enrichment": [3.14159, 1.0]}).to_csv(tables / "methods_summary.csv", index=False)
    pd.DataFrame({"i": range(100)}).to_csv(tables / "long.csv", index=False)
    (r / "params.yaml").write_text("seed: 0\nlatent:\n  k: 15  # neighbours & <votes>\n")
    return r


def test_report_assembles_every_stage_in_order(repo):
    cfg = report.ReportConfig(max_table_rows=10)
    out = report.build_report(cfg, root=repo)
    assert out == repo / "reports" / "report.html"
    page = out.read_text()
    heads = [page.index(f'<h2 id="{s}">') for s in (*cfg.stages, "extra_stage")]
    assert heads == sorted(heads)  # curate ... saliency, then stages found on disk but not listed
    assert page.count("data:image/png;base64,") == 4
    umap_b64 = base64.b64encode((repo / "reports/figures/latent/umap.png").read_bytes()).decode()
    assert umap_b64 in page
    assert page.index("saliency_example_2.png") < page.index("saliency_example_10.png")  # natural order
    assert report.caption_for("latent", "umap.png") in page
    assert "saliency: odd name." in page  # generic caption
    assert out.read_bytes() == report.build_report(cfg, root=repo).read_bytes()  # no clock, no commit: a rerun is identical
    # metrics: a matrix row per encoder, and a key/value table of the rest
    assert "<td>pretrained</td>" in page and "0.812" in page and "nested.deep.x" in page and "IMI, LVH" in page
    # tables: formatted, escaped, cut with a note
    assert "3.142" in page and "<script>" not in page and "&lt;script&gt;" in page
    assert "First 10 of 100 rows." in page
    # params dumped, escaped
    assert "neighbours &amp; &lt;votes&gt;" in page
    assert "No outputs found for this stage." in page  # pretrain, finetune, transfer, evaluate have none here
    # self-contained: nothing fetched when opened
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_metrics_tables_group_equal_sub_dicts():
    tables = report.metrics_tables({"a": {"x": 1, "y": 2}, "b": {"x": 3, "y": 4}, "c": {"z": 1}, "n": 5})
    assert len(tables) == 2
    kv, matrix = tables[0][1], tables[1][1]
    assert dict(zip(kv["metric"], kv["value"])) == {"c.z": 1, "n": 5}
    assert list(matrix.columns) == ["", "x", "y"] and list(matrix[""]) == ["a", "b"]
    sorted_keys = {"auc": 1, "auc_hi": 2, "auc_lo": 0, "n": 3, "x_high": 1, "x_low": 0}
    (_, m), = report.metrics_tables({"m1": sorted_keys, "m2": sorted_keys})
    assert list(m.columns) == ["", "auc", "auc_lo", "auc_hi", "n", "x_low", "x_high"]


def test_nulls_render_as_dashes():
    html = report.table_html(pd.DataFrame({"a": [None, 1.5], "b": ["x", None]}), 10, 2)
    assert "None" not in html and html.count("<td>-</td>") == 2 and "1.50" in html


def test_bad_inputs_name_the_file(repo):
    (repo / "reports" / "metrics" / "transfer.json").write_text("{not json")
    with pytest.raises(ValueError, match="transfer.json"):
        report.build_report(report.ReportConfig(), root=repo)


def test_missing_params_file_and_custom_output(repo):
    (repo / "params.yaml").unlink()
    out = report.build_report(report.ReportConfig(output="out/page.html"), root=repo)
    assert out == repo / "out" / "page.html"
    assert "(params.yaml not found)" in out.read_text()


def test_config_is_strict():
    assert config.from_dict(report.ReportConfig, {"stages": ["latent"]}, "report").stages == ("latent",)
    with pytest.raises(config.ConfigError, match="max_rows"):
        config.from_dict(report.ReportConfig, {"max_rows": 3}, "report")


def test_default_order_puts_evaluate_after_transfer():
    assert report.ReportConfig().stages == (
        "curate", "pretrain", "finetune", "transfer", "evaluate", "latent", "saliency")


def test_run_writes_the_page_under_the_repository_root(repo, monkeypatch):
    """The contract entry point: stage_config("report", ...) in, the page's path out; root defaults to the
    repository root (here a temporary one via ECGSTUDY_ROOT)."""
    monkeypatch.setenv("ECGSTUDY_ROOT", str(repo))
    cfg = config.stage_config("report", {"report": {"max_table_rows": 10}})
    page = report.run(cfg)
    assert page == repo / "reports" / "report.html" and page.is_file()
    text = page.read_text()
    listed = [text.index(f'<h2 id="{s}">') for s in (*cfg.report.stages, "extra_stage")]
    assert listed == sorted(listed)
    # a listed stage with nothing on disk (evaluate here) gets a note, not an error
    evaluate = text[text.index('<h2 id="evaluate">'):text.index('<h2 id="latent">')]
    assert "No outputs found for this stage." in evaluate and "<figure>" not in evaluate
    assert "First 10 of 100 rows." in text
    # outputs of evaluate appear once they exist, in the listed position (not appended at the end)
    (repo / "reports" / "metrics" / "evaluate.json").write_text(json.dumps({"comparisons": 3}))
    text = report.run(cfg, root=repo).read_text()
    evaluate = text[text.index('<h2 id="evaluate">'):text.index('<h2 id="latent">')]
    assert "comparisons" in evaluate and text.count('<h2 id="evaluate">') == 1


CLAIMS = [
    {"claim": "label_efficiency", "title": "Label efficiency", "paper": "ECG-FM", "finding": "pretraining helps with few labels",
     "measure": "finetune: pretrained - scratch", "estimate": 0.021, "low": -0.03, "high": 0.08, "level": 0.998,
     "n_labels": 17, "repeats": 3, "verdict": "inconclusive at this scale", "note": ""},
    {"claim": "foundation_vs_scratch", "title": "Foundation vs scratch", "paper": "UCSF", "finding": "foundation wins",
     "measure": "transfer: foundation - scratch", "estimate": -0.21, "low": -0.3, "high": -0.1, "level": 0.99,
     "n_labels": 3, "repeats": 3, "verdict": "not reproduced", "note": ""},
    {"claim": "latent_structure", "title": "Latent structure", "paper": "ECG-FM", "finding": "<embeddings> cluster",
     "measure": "latent: k-NN", "estimate": 0.05, "low": 0.02, "high": 0.08, "level": 0.95,
     "n_labels": 18, "repeats": 1, "verdict": "reproduced", "note": "own interval"},
]


@pytest.fixture
def repo_with_claims(repo):
    (repo / "reports" / "metrics" / "evaluate.json").write_text(json.dumps(
        {"claims": CLAIMS, "rule": {"min_effect": 0.01, "n_boot": 1000}, "finetune": {"n": 1}}))
    return repo


def test_results_come_first_with_every_verdict_drawn_alike(repo_with_claims):
    page = report.build_report(report.ReportConfig(), root=repo_with_claims).read_text()
    results = page[page.index('<h2 id="results">'):page.index('<h2 id="curate">')]
    assert page.index('<h2 id="results">') < page.index('<h2 id="curate">')
    assert "3 claims: 1 inconclusive at this scale, 1 not reproduced, 1 reproduced." in results
    for verdict, css in (("reproduced", "v-reproduced"), ("not reproduced", "v-not-reproduced"),
                         ("inconclusive at this scale", "v-inconclusive-at-this-scale")):
        assert f'<span class="verdict {css}">{verdict}</span>' in results
    assert "-0.210 [-0.300, -0.100] (99.0%)" in results and "&lt;embeddings&gt;" in results
    evaluate = page[page.index('<h2 id="evaluate">'):page.index('<h2 id="latent">')]
    assert "claims[0]" not in evaluate and "finetune.n" in evaluate  # claims shown once, at the top


def test_results_section_says_when_there_are_none(repo):
    page = report.build_report(report.ReportConfig(), root=repo).read_text()
    assert "No results yet" in page[page.index('<h2 id="results">'):page.index('<h2 id="curate">')]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Appended to a copy of the page (the report itself holds no script): measures what the browser laid out.
PROBE = """<script>
const r = document.getElementById('results'), first = document.querySelector('h2:not(#results)');
const badges = [...document.querySelectorAll('#results ~ table.claims .verdict, table.claims .verdict')];
const styles = badges.map(b => getComputedStyle(b));
const out = {
  results_above_stages: r.getBoundingClientRect().top < first.getBoundingClientRect().top,
  results_in_first_screen: r.getBoundingClientRect().top < window.innerHeight,
  rows: document.querySelectorAll('table.claims tbody tr').length,
  verdicts: badges.map(b => b.textContent),
  sizes: [...new Set(styles.map(s => s.fontSize + '/' + s.fontWeight))],
  visible: badges.every(b => b.getBoundingClientRect().width > 0 && b.getBoundingClientRect().height > 0),
};
document.body.insertAdjacentHTML('beforeend', '<pre id="probe">' + JSON.stringify(out) + '</pre>');
</script>"""


def test_results_render_in_a_real_browser(repo_with_claims, tmp_path):
    if CHROMIUM is None:  # a missing browser fails: a skipped browser check would read as passed
        pytest.fail("no chromium on PATH: `make browser` installs Debian's chromium (`make test` does it first)")
    page = report.build_report(report.ReportConfig(), root=repo_with_claims).read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                          "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.findall(r'<pre id="probe">(\{.*?)</pre>', dom)  # the element the script added, not its source
    assert found, dom[-2000:]
    out = json.loads(html.unescape(found[-1]))
    assert out["results_above_stages"] and out["results_in_first_screen"] and out["visible"]
    assert out["rows"] == 3 and sorted(out["verdicts"]) == sorted(c["verdict"] for c in CLAIMS)
    assert len(out["sizes"]) == 1  # a null or a negative verdict is drawn exactly as large and bold as a positive
