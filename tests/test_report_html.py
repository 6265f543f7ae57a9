"""report/index.html: one self-contained page with every run, every plot, and nothing injected."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest_report import write_run
from vgx.report import Report, build_report
from vgx.store import RunDir

INJECTED = "<script>alert(1)</script>"


class Page(HTMLParser):
    """The parts of a page the tests look at: tags, table rows, images, links, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[tuple[str | None, list[str]]] = []  # (class, cells) of summary-table rows
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._table: str | None = None  # class of the table being read
        self.header_cells = 0  # of the summary table
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table = dict(attrs).get("class")
        if self._table != "sortable":
            return
        if tag == "th":
            self.header_cells += 1
        elif tag == "tr":
            self.rows.append((dict(attrs).get("class"), []))
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def body_rows(self) -> dict[str, str | None]:
        """run -> row class, for the rows of the summary table (run is the first cell)."""
        return {cells[0]: css for css, cells in self.rows if cells}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Page, str]:
    root = tmp_path_factory.mktemp("sweep")
    write_run(root, "act=relu", act="relu")
    write_run(root, "act=evil", act=INJECTED)
    failure = {"message": f"RuntimeError: {INJECTED}"}
    write_run(root, "act=tanh", act="tanh", status="failed", summary=False, status_fields=failure)
    divergence = {"step": 3, "layer": "blocks.2.linear", "message": "non-finite"}
    write_run(root, "act=sigmoid", act="sigmoid", status="diverged", status_fields=divergence)
    write_run(root, "act=elu", act="elu").status_file.write_text('{"status": "do')
    report = build_report(root, echo=False)
    text = (root / "report" / "index.html").read_text(encoding="utf-8")
    return report, Page(text), text


def test_every_run_is_a_row_of_the_summary_table(built):
    report, page, _ = built
    assert set(page.body_rows()) == set(report.summary["run"])


def test_every_plot_is_embedded_as_a_png_image(built):
    report, page, _ = built
    sources = {attrs["alt"]: attrs["src"] for attrs in page.all("img")}
    plots = {p.name for p in report.paths if p.suffix == ".png"}
    assert set(sources) == plots
    for name, src in sources.items():
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data) == (report.paths[0].parent / name).read_bytes()


def test_the_page_loads_nothing_from_elsewhere(built):
    _, page, _ = built
    assert all(not attrs.get("src") for attrs in page.all("script"))
    assert not page.all("link")
    assert all(a["href"] in ("summary.csv", "layers.csv") or a["href"].startswith("#")
               for a in page.all("a"))  # fmt: skip


def test_a_config_value_holding_markup_is_shown_as_text_not_run(built):
    _, page, text = built
    assert len(page.all("script")) == 1  # the page's own sorting script
    assert INJECTED not in text
    assert sum(INJECTED in chunk for chunk in page.text) >= 2  # the act cell and the message


def test_runs_that_did_not_finish_are_marked_by_row_class_with_their_message(built):
    _, page, _ = built
    classes = page.body_rows()
    assert classes == {
        "act=relu": None,
        "act=evil": None,
        "act=tanh": "failed",
        "act=sigmoid": "diverged",
        "act=elu": "corrupt",
    }
    messages = {cells[0]: cells[-1] for _, cells in page.rows if cells}
    assert messages["act=tanh"] == f"RuntimeError: {INJECTED}"
    assert messages["act=sigmoid"] == "non-finite"


def test_rows_have_a_sortable_header_with_one_cell_per_column(built):
    _, page, _ = built
    header = page.header_cells
    sortable = [t for t in page.all("table") if t["class"] == "sortable"]
    assert len(sortable) == 1
    assert all(len(cells) == header for _, cells in page.rows if cells)


def test_numeric_cells_carry_their_full_value_for_sorting(built):
    report, page, _ = built
    values = [float(td["data-v"]) for td in page.all("td") if td.get("data-v")]
    assert set(report.summary["steps_done"].dropna()) <= set(values)


def test_every_plot_section_is_linked_from_the_top(built):
    _, page, _ = built
    targets = {a["href"][1:] for a in page.all("a") if a["href"].startswith("#")}
    assert targets == {attrs["id"] for attrs in page.all("h2") if attrs.get("id")}
    assert targets


def test_the_page_is_written_beside_the_tables(tmp_path: Path):
    write_run(tmp_path, "act=relu", act="relu")
    build_report(tmp_path, tmp_path / "elsewhere", echo=False)
    assert (tmp_path / "elsewhere" / "index.html").stat().st_size > 0


def test_the_page_is_listed_with_the_files_the_report_wrote(built):
    report, _, _ = built
    assert report.paths[-1] == report.paths[0].parent / "index.html"


# -- the page opens with what the sweep shows -----------------------------------------------------


@pytest.fixture(scope="module")
def experiment_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, str]:
    """A he2015 sweep: the He run learns, the Xavier run is stuck at chance."""
    root = tmp_path_factory.mktemp("he2015")
    for init in ("he_normal", "xavier_normal"):
        run = write_run(root, f"init={init}", init=init, experiment="he2015", depth=6)
        run.write_summary({**run.read_summary(), "n_classes": 10})
    stuck = RunDir(root / "init=xavier_normal").metrics_dir / "evals-00000.parquet"
    pd.read_parquet(stuck).assign(accuracy=0.1).to_parquet(stuck)
    report = build_report(root, echo=False)
    return report, (root / "report" / "index.html").read_text(encoding="utf-8")


def test_the_page_opens_with_the_conclusions_before_the_runs_table(experiment_page):
    _, text = experiment_page
    assert text.index('id="conclusions"') < text.index("<h2>Runs</h2>")
    assert text.index("<h1>") < text.index('id="conclusions"')


def test_a_run_that_did_not_train_is_named_in_the_conclusions(experiment_page):
    report, text = experiment_page
    conclusions = text.split('id="conclusions"', 1)[1].split("</section>", 1)[0]
    assert "1 of 2 runs did not train" in conclusions
    assert "init=xavier_normal" in conclusions.split("did not train", 1)[1].split("</li>", 1)[0]
    assert [r.trained for r in report.conclusions.runs] == [True, False]


def test_the_canned_experiment_verdict_is_in_the_conclusions(experiment_page):
    report, text = experiment_page
    assert report.conclusions.experiment is not None
    conclusions = text.split('id="conclusions"', 1)[1].split("</section>", 1)[0]
    assert "Experiment he2015:" in conclusions and "He et al. 2015" in conclusions


def test_every_run_has_its_gradient_verdict_and_slopes_in_the_conclusions(experiment_page):
    report, _ = experiment_page
    for run in report.conclusions.runs:
        assert run.at_init.startswith(("VANISHING", "EXPLODING", "healthy"))
        assert run.measured_slope == run.measured_slope  # a number, not NaN


def test_every_plot_has_a_sentence_saying_what_it_shows(built):
    _, page, text = built
    captions = text.split("<figcaption>")[1:]
    assert len(captions) == len(page.all("img"))
    for caption in captions:
        sentence = caption.split('<span class="file">', 1)[0].strip()
        assert sentence.endswith(".") and len(sentence.split()) >= 12
