"""Evaluations in admin and as xlsx, as a quality engineer reads them.

Real tiny TensorFlow models (the colour classifier and one with green and blue
swapped), real stored images, the real evaluation job; the pages through the
test client, the workbook read back with openpyxl.
"""

import io
import re

import pytest
from openpyxl import load_workbook

from common.models import JobState
from models_registry.admin.evaluation import mcnemar_sentence
from models_registry.evaluation.models import Evaluation, EvaluationResult
from models_registry.evaluation.services import evaluation_start
from tests import factories
from tests.models_registry.test_api import client_for
from tests.models_registry.test_evaluation import blue_green_swapped, colour_set, run, snapshot_of
from tests.registry import ready_version

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/models_registry/evaluation/add/"


def page_url(evaluation: Evaluation, view: str = "change") -> str:
    return f"/admin/models_registry/evaluation/{evaluation.pk}/{view}/"


@pytest.fixture
def engineer():
    return factories.engineer(username="qe")


@pytest.fixture
def browser(client, engineer):
    client.force_login(engineer)
    return client


@pytest.fixture
def finished(engineer) -> Evaluation:
    """bottle v1 (always right) against bottle-b v1 (calls green 'crack' and blue
    'missing_cap') on ten test images: 4 red ok, 3 green missing_cap, 3 blue crack."""
    champion = ready_version(model_name="bottle")
    challenger = ready_version(model_name="bottle-b", keras_model=blue_green_swapped())
    snapshot = snapshot_of(colour_set())
    evaluation = run(
        evaluation_start(
            version=champion, snapshot=snapshot, challenger=challenger, requested_by=engineer
        )
    )
    assert evaluation.job.state == JobState.DONE, evaluation.job.error
    return evaluation


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def heat_map_rows(html: str, role: str) -> list[list[int]]:
    table = re.search(rf'<table class="heat-map" id="heat-map-{role}">(.*?)</table>', html, re.S)
    assert table, f"no heat map of the {role}"
    rows = re.findall(r"<tr><th>[^<]+</th>(.*?)</tr>", table.group(1), re.S)
    return [[int(n) for n in re.findall(r'<td class="cell[^"]*"[^>]*>(\d+)</td>', r)] for r in rows]


def test_an_engineer_reads_champion_against_challenger_with_heat_maps_and_disagreements(
    browser, finished
):
    response = browser.get(page_url(finished))
    assert response.status_code == 200
    html = response.content.decode()

    # The metrics of both versions, side by side.
    assert re.search(r'<dd class="accuracy">100 %</dd>', html)
    assert re.search(r'<dd class="accuracy">40 %</dd>', html)
    assert "Macro-F1" in html and "recall" in html and "support" in html
    # Confusion matrices as heat maps: the challenger's green and blue swapped.
    assert heat_map_rows(html, "champion") == [[4, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert heat_map_rows(html, "challenger") == [[4, 0, 0], [0, 0, 3], [0, 3, 0]]
    full = re.search(
        r'class="cell dark diagonal" style="background-color: rgba\([^)]*0\.900\)', html
    )
    assert full, "a class always right is shaded fully"
    # Calibration: a chart drawn from the page's own figures, and its table.
    assert 'id="calibration-champion"' in html and "chart.umd.min.js" in html
    assert '<script id="calibration-data" type="application/json">' in html
    # McNemar's test in a sentence.
    sentence = re.search(r'<p class="paired-test" id="paired-test">(.*?)</p>', html, re.S).group(1)
    assert "only bottle v1 is right on 6, only bottle-b v1 on 0" in sentence
    assert "p = 0.0312" in sentence and "bottle v1 is better" in sentence
    # The line: default thresholds, all four reds pass, every defect fails.
    assert "a new deployment's default thresholds" in html
    assert re.search(r'<dd id="escapes">0 \(0 %\)</dd>', html)
    assert 'id="suggestions"' in html

    # The six images they disagree on, each a thumbnail linking to the image.
    grid = html.split('id="disagree-images"')[1]
    assert "(6)" in grid.split("</h2>")[0]
    links = re.findall(r'<a href="(/admin/models_registry/dataset/\d+/images/\d+/)"', grid)
    thumbs = re.findall(
        r'<img src="(/admin/models_registry/dataset/\d+/images/\d+/thumbnail/)"', grid
    )
    assert len(links) == len(thumbs) == 6
    image_page = browser.get(links[0])
    assert image_page.status_code == 200
    file_url = re.search(
        r"(/admin/models_registry/dataset/\d+/images/\d+/file/)", image_page.content.decode()
    ).group(1)
    shown = body(browser.get(file_url))
    image_id = int(links[0].rstrip("/").rsplit("/", 1)[1])
    row = EvaluationResult.objects.filter(evaluation=finished, item__image_id=image_id).first()
    with row.item.image.file.open("rb") as handle:
        assert shown == handle.read()
    assert row.item.label.name in {"missing_cap", "crack"}
    # The champion made no mistake: its grid says so.
    assert "No image here." in html.split('id="wrong-images"')[1].split('id="disagree-images"')[0]

    # Every disagreement, a page at a time; and the list of evaluations.
    everything = browser.get(page_url(finished, "images"), {"show": "disagree"}).content.decode()
    assert "6 image(s)" in everything
    assert len(re.findall(r'<li class="right">', everything)) == 6
    listing = browser.get("/admin/models_registry/evaluation/").content.decode()
    assert "bottle v1 vs bottle-b v1 on bottles snapshot 1 (test)" in listing
    assert "100.0%" in listing and "40.0%" in listing


def test_an_inspector_is_refused_the_evaluation_pages_and_its_workbook(client, finished):
    urls = [page_url(finished), page_url(finished, "images"), ADD_URL]
    for staff in (False, True):
        inspector = factories.inspector(username=f"insp-{staff}", is_staff=staff)
        client.force_login(inspector)
        for url in urls:
            response = client.get(url)
            if staff:  # in admin, but without the registry's permissions
                assert response.status_code == 403, url
            else:
                assert response.status_code == 302, url
                assert response["Location"].startswith("/admin/login/"), url
        api = client_for(inspector)
        assert api.get(f"/api/v1/evaluations/{finished.pk}/export.xlsx").status_code == 403
        assert client.get(f"/api/v1/evaluations/{finished.pk}/export.xlsx").status_code == 403


def test_the_evaluate_form_queues_a_job_the_page_follows_and_refuses_before_starting(
    browser, engineer
):
    version = ready_version(model_name="bottle")
    snapshot = snapshot_of(colour_set())

    response = browser.get(ADD_URL, {"version": version.pk})
    assert response.status_code == 200
    assert re.search(
        rf'<option value="{version.pk}" selected>bottle v1</option>', response.content.decode()
    )

    refused = browser.post(
        ADD_URL,
        {
            "version": version.pk,
            "snapshot": snapshot.pk,
            "split": "validation",  # no validation images in this snapshot
            "target_escape_rate": "0.01",
        },
    )
    assert refused.status_code == 200
    assert "has no validation images" in refused.content.decode()
    assert not Evaluation.objects.exists()

    response = browser.post(
        ADD_URL,
        {
            "version": version.pk,
            "snapshot": snapshot.pk,
            "split": "test",
            "target_escape_rate": "0.02",
        },
    )
    evaluation = Evaluation.objects.get()
    assert response.status_code == 302 and response["Location"] == page_url(evaluation)
    assert evaluation.created_by == engineer and evaluation.options["target_escape_rate"] == 0.02

    html = browser.get(page_url(evaluation)).content.decode()
    assert f'data-job-url="/api/v1/jobs/{evaluation.job_id}/"' in html
    assert "registry/job_progress.js" in html
    assert '<span id="job-state">queued</span>' in html
    assert 'id="metrics"' not in html  # no figures before the job has made them
    job = browser.get(f"/api/v1/jobs/{evaluation.job_id}/").json()
    assert (job["state"], job["kind"]) == ("queued", "evaluation")
    early = browser.get(f"/api/v1/evaluations/{evaluation.pk}/export.xlsx")
    assert early.status_code == 409 and "queued" in early.json()["detail"]


def test_the_workbook_holds_the_metrics_confusion_matrices_and_a_row_per_image(browser, finished):
    html = browser.get(page_url(finished)).content.decode()
    link = re.search(r'id="export-xlsx" href="([^"]+)"', html).group(1)
    assert link == f"/api/v1/evaluations/{finished.pk}/export.xlsx"

    response = browser.get(link)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert f"evaluation-{finished.pk}-bottle-v1.xlsx" in response["Content-Disposition"]
    book = load_workbook(io.BytesIO(body(response)))
    assert book.sheetnames == [
        "Summary",
        "Per class",
        "Confusion matrix",
        "Calibration",
        "Line",
        "Images",
    ]

    summary = {row[0]: row[1:] for row in book["Summary"].iter_rows(values_only=True) if row}
    assert summary["Accuracy"][:2] == (1.0, 0.4)
    assert summary["Only the champion right"][0] == 6
    assert summary["p-value"][0] == pytest.approx(2 / 64)

    per_class = list(book["Per class"].iter_rows(min_row=2, values_only=True))
    crack = {row[0]: row for row in per_class if row[1] == "crack"}
    assert crack["bottle v1"][2:6] == (1.0, 1.0, 1.0, 3)
    assert crack["bottle-b v1"][3] == 0.0  # recall

    matrix = [r for r in book["Confusion matrix"].iter_rows(values_only=True) if any(r)]
    assert matrix[1] == ("True \\ Predicted", "ok", "missing_cap", "crack")
    assert matrix[2:5] == [("ok", 4, 0, 0), ("missing_cap", 0, 3, 0), ("crack", 0, 0, 3)]
    assert matrix[7:10] == [("ok", 4, 0, 0), ("missing_cap", 0, 0, 3), ("crack", 0, 3, 0)]

    images = list(book["Images"].iter_rows(values_only=True))
    header, rows = images[0], images[1:]
    assert len(rows) == 10
    column = {name: i for i, name in enumerate(header)}
    stored = {
        r.item.image.sha256: r
        for r in EvaluationResult.objects.filter(
            evaluation=finished, version=finished.version
        ).select_related("item__image")
    }
    for row in rows:
        mine = stored[row[column["sha256"]]]
        assert row[column["Predicted class"]] == mine.predicted
        assert row[column["Confidence"]] == pytest.approx(mine.confidence, abs=1e-6)
        assert row[column["Right"]] is True
    swapped = [r for r in rows if r[column["Challenger right"]] is False]
    assert len(swapped) == 6
    assert {(r[column["True class"]], r[column["Challenger's class"]]) for r in swapped} == {
        ("missing_cap", "crack"),
        ("crack", "missing_cap"),
    }


def test_the_paired_test_says_when_the_difference_may_be_chance():
    evaluation = Evaluation(image_count=40, paired_test={})
    assert mcnemar_sentence(evaluation) == ""
    champion, challenger = (
        factories.version_row(model_name="a"),
        factories.version_row(model_name="b"),
    )
    evaluation = Evaluation(
        version=champion,
        challenger=challenger,
        image_count=40,
        paired_test={
            "only_champion_right": 3,
            "only_challenger_right": 2,
            "disagreements": 5,
            "method": "exact binomial",
            "p_value": 1.0,
            "significant": False,
        },
    )
    sentence = mcnemar_sentence(evaluation)
    assert "different classes on 5 of 40 images" in sentence
    assert "no difference beyond chance" in sentence and "is better on" not in sentence


def test_each_version_page_lists_its_evaluations_as_champion_or_challenger(browser, finished):
    for version, role, other in (
        (finished.version, "champion", finished.challenger),
        (finished.challenger, "challenger", finished.version),
    ):
        html = browser.get(f"/admin/models_registry/modelversion/{version.pk}/change/").content
        listing = html.decode().split('id="version-evaluations"')[1].split("</table>")[0]
        assert f'<a href="{page_url(finished)}">bottles snapshot 1, test</a>' in listing
        assert f"<td>{role}</td><td>{other}</td><td>10</td>" in listing
        assert "<td>done</td>" in listing
    champion_page = browser.get(
        f"/admin/models_registry/modelversion/{finished.version.pk}/change/"
    ).content.decode()
    assert f"/admin/models_registry/evaluation/add/?version={finished.version.pk}" in champion_page
    assert '<td class="n">100 %</td>' in champion_page
