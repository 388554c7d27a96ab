"""Lab against line: each version's latest evaluation on a dataset next to its agreement here."""

import datetime as dt
import io

import lxml.html
import openpyxl
import pytest

from common.models import Job, JobState
from models_registry.datasets.models import Dataset, DatasetSnapshot
from models_registry.evaluation.models import Evaluation
from tests import factories
from tests.reports.conftest import RANGE


def finished_evaluation(
    version,
    snapshot,
    *,
    accuracy,
    macro_f1,
    state=JobState.DONE,
    at=None,
    challenger=None,
    challenger_accuracy=None,
):
    """An evaluation row as the evaluation job leaves it (its pipeline is tested elsewhere)."""
    job = Job.objects.create(
        kind="evaluation",
        queue="evaluations",
        state=state,
        progress=1.0,
        finished=at or dt.datetime(2026, 3, 27, 12, tzinfo=dt.UTC),
    )
    challenger_metrics = (
        {"accuracy": challenger_accuracy, "macro_f1": 0.5} if challenger is not None else {}
    )
    return Evaluation.objects.create(
        version=version,
        challenger=challenger,
        snapshot=snapshot,
        split="test",
        job=job,
        label_space="labels",
        classes=["ok", "crack", "scratch"],
        image_count=200,
        metrics={"accuracy": accuracy, "macro_f1": macro_f1, "per_label": {}},
        challenger_metrics=challenger_metrics,
    )


@pytest.fixture
def viewer_client(client, known_plant):
    client.force_login(factories.viewer())
    return client


@pytest.fixture
def snapshots(db):
    dataset = Dataset.objects.create(name="caps")
    return [DatasetSnapshot.objects.create(dataset=dataset, number=n) for n in (1, 2)]


def lab_table(response) -> dict[str, dict[str, str]]:
    document = lxml.html.fromstring(response.content)
    table = document.get_element_by_id("table-lab")
    keys = [th.get("data-key") for th in table.xpath(".//thead//th")]
    return {
        tr.xpath("./td")[0].text_content(): {
            key: td.text_content() for key, td in zip(keys, tr.xpath("./td"), strict=True)
        }
        for tr in table.xpath(".//tbody/tr")
    }


def test_a_version_with_an_evaluation_shows_both_figures_and_the_gap(
    viewer_client, known_plant, snapshots
):
    v1, _ = known_plant.versions
    # An older evaluation, one still running and a failed one must not be the ones shown.
    finished_evaluation(
        v1, snapshots[0], accuracy=0.5, macro_f1=0.4, at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    )
    finished_evaluation(v1, snapshots[1], accuracy=0.9, macro_f1=0.85)
    finished_evaluation(v1, snapshots[1], accuracy=0.1, macro_f1=0.1, state=JobState.RUNNING)
    finished_evaluation(v1, snapshots[1], accuracy=0.2, macro_f1=0.2, state=JobState.FAILED)

    rows = lab_table(viewer_client.get("/reports/", RANGE))

    # cap v1 agrees with inspectors on 2 of 5 verified frames (tests/reports/expected.py).
    assert rows["cap v1"]["dataset"] == "caps"
    assert rows["cap v1"]["snapshot"] == "2"
    assert rows["cap v1"]["split"] == "test"
    assert rows["cap v1"]["lab_accuracy"] == "90.0 %"
    assert rows["cap v1"]["lab_macro_f1"] == "85.0 %"
    assert rows["cap v1"]["agreement"] == "40.0 %"
    assert rows["cap v1"]["lab_line_gap"] == "50.0 %"
    # A version never evaluated shows a dash for the lab, and still its line figure.
    assert rows["cap v2"]["lab_accuracy"] == "—"
    assert rows["cap v2"]["lab_line_gap"] == "—"
    assert rows["cap v2"]["agreement"] == "33.3 %"


def test_a_challengers_figures_come_from_its_own_metrics(viewer_client, known_plant, snapshots):
    v1, v2 = known_plant.versions
    finished_evaluation(
        v1, snapshots[0], accuracy=0.9, macro_f1=0.85, challenger=v2, challenger_accuracy=0.75
    )
    rows = lab_table(viewer_client.get("/reports/", RANGE))
    assert rows["cap v1"]["lab_accuracy"] == "90.0 %"
    assert rows["cap v2"]["lab_accuracy"] == "75.0 %"
    assert rows["cap v2"]["lab_macro_f1"] == "50.0 %"


def test_the_workbook_holds_the_same_lab_against_line_sheet(viewer_client, known_plant, snapshots):
    v1, _ = known_plant.versions
    finished_evaluation(v1, snapshots[1], accuracy=0.9, macro_f1=0.85)
    response = viewer_client.get("/reports/export.xlsx", RANGE)
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(book["Lab against line"].iter_rows(values_only=True))
    header = rows[0]
    by_version = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert by_version["cap v1"]["Lab accuracy"] == pytest.approx(0.9)
    assert by_version["cap v1"]["Line agreement"] == pytest.approx(0.4)
    assert by_version["cap v1"]["Lab - line"] == pytest.approx(0.5)
    assert by_version["cap v1"]["Dataset"] == "caps"
    assert by_version["cap v2"]["Lab accuracy"] is None
    assert by_version["cap v2"]["Line agreement"] == pytest.approx(1 / 3)
