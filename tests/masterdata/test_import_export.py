"""Spreadsheet import/export of master data through the admin views, with real xlsx and csv."""

import io

import openpyxl
import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from masterdata.authentication import StationTokenAuthentication
from masterdata.models import DefectType, Line, Plant, Product, Station
from tests import factories
from tests.masterdata.spreadsheets import (
    csv_file,
    export_file,
    import_file,
    read_xlsx,
    row_errors,
    xlsx_file,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(factories.engineer())
    return client


def snapshot() -> dict[str, list[tuple]]:
    """All master data as plain values, to compare before and after."""
    return {
        "plants": list(Plant.objects.values_list("code", "name", "time_zone", "archived")),
        "lines": list(Line.objects.values_list("code", "name", "plant__code", "archived")),
        "stations": list(
            Station.objects.values_list("code", "line__code", "description", "active", "token_hash")
        ),
        "products": [
            (p.sku, p.name, sorted(line.code for line in p.lines.all()), p.archived)
            for p in Product.objects.prefetch_related("lines")
        ],
        "defect_types": list(
            DefectType.objects.values_list("code", "name", "severity", "description", "archived")
        ),
    }


def assert_imported(response) -> str:
    """The import went through: back on the list with the count message."""
    assert response.status_code == 302, row_errors(response) if response.context else response
    shown = [str(m) for m in response.wsgi_request._messages]
    finished = [message for message in shown if message.startswith("Import finished")]
    assert len(finished) == 1, shown
    return finished[0]


def assert_nothing_imported(response, before: dict) -> None:
    assert response.status_code == 200
    assert "Nothing was imported" in response.content.decode()
    assert snapshot() == before


# --- A good file imports everything ------------------------------------------


def test_good_xlsx_files_import_the_whole_plant(admin_client):
    files = [
        ("plant", [["code", "name", "time_zone"], ["LYON", "Lyon yogurts", "Europe/Paris"]]),
        (
            "line",
            [["code", "name", "plant"], ["L1", "Filling 1", "LYON"], ["L2", "Filling 2", "LYON"]],
        ),
        (
            "station",
            [
                ["code", "line", "description", "active"],
                ["L1-CAP", "L1", "Cap camera", "yes"],
                ["L1-LABEL", "L1", "Label camera", ""],
                ["L2-CAP", "L2", "", "no"],
            ],
        ),
        (
            "product",
            [
                ["sku", "name", "lines"],
                ["YOG-125", "Yogurt 125 g", "L1, L2"],
                ["YOG-500", "Yogurt 500 g", "L2"],
            ],
        ),
        (
            "defecttype",
            [
                ["code", "name", "severity", "description"],
                ["missing_cap", "Missing cap", "critical", "No cap on the bottle"],
                ["wrong_label", "Wrong label", "Major", ""],
            ],
        ),
    ]
    for model_name, rows in files:
        response = import_file(admin_client, model_name, xlsx_file(rows), "xlsx")
        assert f"{len(rows) - 1} new" in assert_imported(response)
        if model_name == "station":
            shown = " ".join(str(m) for m in response.wsgi_request._messages)
            assert "New stations have no device token yet" in shown

    assert snapshot() == {
        "plants": [("LYON", "Lyon yogurts", "Europe/Paris", False)],
        "lines": [("L1", "Filling 1", "LYON", False), ("L2", "Filling 2", "LYON", False)],
        "stations": [
            ("L1-CAP", "L1", "Cap camera", True, ""),
            ("L1-LABEL", "L1", "Label camera", True, ""),
            ("L2-CAP", "L2", "", False, ""),
        ],
        "products": [
            ("YOG-125", "Yogurt 125 g", ["L1", "L2"], False),
            ("YOG-500", "Yogurt 500 g", ["L2"], False),
        ],
        "defect_types": [
            ("missing_cap", "Missing cap", "critical", "No cap on the bottle", False),
            ("wrong_label", "Wrong label", "major", "", False),
        ],
    }


def test_good_csv_file_updates_known_codes_and_adds_new_ones(admin_client):
    plant = factories.plant(code="LYON")
    factories.line(code="L1", plant_obj=plant, name="old name")
    rows = [
        ["code", "name", "plant", "archived"],
        ["L1", "Filling 1", "LYON", "no"],
        ["L9", "", "LYON", "yes"],
    ]

    message = assert_imported(import_file(admin_client, "line", csv_file(rows), "csv"))

    assert "1 new, 1 updated" in message
    assert snapshot()["lines"] == [("L1", "Filling 1", "LYON", False), ("L9", "", "LYON", True)]


def test_codes_typed_as_numbers_stray_spaces_and_capitalised_headers_are_understood(
    admin_client,
):
    factories.plant(code="100")
    rows = [["Code", "Name ", "PLANT"], [4711, " Line 4711 ", 100]]

    assert_imported(import_file(admin_client, "line", xlsx_file(rows), "xlsx"))

    assert snapshot()["lines"] == [("4711", "Line 4711", "100", False)]


def test_trailing_empty_spreadsheet_rows_are_ignored(admin_client):
    rows = [
        ["code", "name", "severity"],
        ["crack", "Crack", "minor"],
        [None, None, None],
        [None, None, None],
    ]

    assert "1 new" in assert_imported(
        import_file(admin_client, "defecttype", xlsx_file(rows), "xlsx")
    )


# --- One bad row: nothing imported, the row and the reason shown -------------


@pytest.fixture
def existing(db):
    """Rows a bad file also tries to update: they must stay as they were."""
    plant = factories.plant(code="LYON", name="Lyon", time_zone="Europe/Paris")
    line = factories.line(code="L1", plant_obj=plant, name="Filling 1")
    factories.station(code="S1", line_obj=line, description="old")
    factories.product(sku="YOG-125", name="Yogurt", lines=[line])
    factories.defect_type(code="crack", name="Crack", severity="minor")


BAD_FILES = {
    "unknown line code": (
        "station",
        [["code", "line", "description"], ["S1", "L1", "updated"], ["S2", "NOPE", ""]],
        {2: {"line": ["No line has the code 'NOPE'."]}},
    ),
    "invalid code characters": (
        "plant",
        [
            ["code", "name", "time_zone"],
            ["LYON", "Lyon 2", "Europe/Paris"],
            ["PARIS NORD/2", "x", "UTC"],
        ],
        {
            2: {
                "code": [
                    "Use 1-50 letters, digits, '.', '-' or '_', starting with a letter or digit."
                ]
            }
        },
    ),
    "duplicate code in the file": (
        "defecttype",
        [
            ["code", "name", "severity"],
            ["crack", "Crack (updated)", "major"],
            ["dent", "Dent", "minor"],
            ["crack", "Crack again", "minor"],
        ],
        {3: {"code": ["'crack' is already in row 1 of this file."]}},
    ),
    "bad severity": (
        "defecttype",
        [
            ["code", "name", "severity"],
            ["crack", "Crack", "major"],
            ["dent", "Dent", "catastrophic"],
        ],
        {2: {"severity": ["Use one of critical, major, minor, not 'catastrophic'."]}},
    ),
    "bad time zone": (
        "plant",
        [
            ["code", "name", "time_zone"],
            ["LYON", "Lyon 2", "UTC"],
            ["MARS", "Mars", "Mars/Olympus"],
        ],
        {2: {"time_zone": ["'Mars/Olympus' is not a time zone name such as Europe/Paris."]}},
    ),
    "unknown line in a product's list": (
        "product",
        [["sku", "name", "lines"], ["YOG-125", "Yogurt 2", "L1"], ["YOG-1K", "Big", "L1, L7, L8"]],
        {2: {"lines": ["No lines have the codes L7, L8."]}},
    ),
    "missing plant": (
        "line",
        [["code", "name", "plant"], ["L1", "renamed", "LYON"], ["L2", "", ""]],
        {2: {"plant": ["Give the code of a plant."]}},
    ),
    "unclear yes/no": (
        "station",
        [["code", "line", "active"], ["S1", "L1", "no"], ["S2", "L1", "maybe"]],
        {2: {"active": ["Write yes or no, not 'maybe'."]}},
    ),
    "blank code": (
        "defecttype",
        [["code", "name", "severity"], ["crack", "Crack 2", "major"], ["", "Nameless", "minor"]],
        {2: {"code": ["This field cannot be blank."]}},
    ),
}


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_file_with_one_bad_row_imports_nothing_and_says_which_row_and_why(
    admin_client, existing, case, kind
):
    model_name, rows, expected = BAD_FILES[case]
    content = xlsx_file(rows) if kind == "xlsx" else csv_file(rows)
    before = snapshot()

    response = import_file(admin_client, model_name, content, kind)

    assert_nothing_imported(response, before)
    assert row_errors(response) == expected
    page = response.content.decode()
    for errors in expected.values():
        for messages in errors.values():
            for message in messages:
                assert message.replace("'", "&#x27;") in page


def test_row_with_several_mistakes_reports_each_of_them(admin_client, existing):
    rows = [["code", "line", "active"], ["bad code!", "NOPE", "perhaps"]]
    before = snapshot()

    response = import_file(admin_client, "station", csv_file(rows), "csv")

    assert_nothing_imported(response, before)
    assert set(row_errors(response)[1]) == {"code", "line", "active"}


def test_file_without_the_code_column_imports_nothing(admin_client, existing):
    before = snapshot()

    response = import_file(
        admin_client, "plant", csv_file([["name", "time_zone"], ["Lyon", "UTC"]]), "csv"
    )

    assert_nothing_imported(response, before)
    assert "no &#x27;code&#x27; column was found" in response.content.decode()


def test_header_only_file_is_refused(admin_client, existing):
    before = snapshot()

    response = import_file(
        admin_client, "defecttype", xlsx_file([["code", "name", "severity"]]), "xlsx"
    )

    assert_nothing_imported(response, before)
    assert "The file has a header but no rows." in response.content.decode()


def test_oversized_file_is_refused_before_it_is_read(admin_client, existing):
    before = snapshot()
    rows = [["code", "name", "severity"]] + [[f"d{i}", "x" * 100, "minor"] for i in range(50_000)]

    response = import_file(admin_client, "defecttype", csv_file(rows), "csv")

    assert response.status_code == 200
    assert "master data files are limited to 5 MB" in response.content.decode()
    assert snapshot() == before


def test_file_that_is_not_a_spreadsheet_is_refused_with_a_reason(admin_client, existing):
    before = snapshot()

    response = import_file(admin_client, "plant", b"PK\x03\x04 not really a workbook", "xlsx")

    assert response.status_code == 200
    assert "Ensure you have chosen the correct format" in response.content.decode()
    assert snapshot() == before


# --- Station tokens never travel in spreadsheets -----------------------------


def test_station_export_has_no_token_columns(admin_client):
    factories.station_with_token(code="S1")

    rows = read_xlsx(export_file(admin_client, "station", "xlsx"))

    assert rows[0] == ["code", "line", "description", "active"]
    assert all("lss_" not in str(cell) for row in rows for cell in row)


def test_importing_token_columns_cannot_set_or_clear_a_station_token(admin_client):
    station, token = factories.station_with_token(code="S1")
    line = station.line.code
    rows = [
        ["code", "line", "description", "token_hash", "token_prefix"],
        ["S1", line, "renamed", "", ""],
        ["S2", line, "", "0" * 64, "lss_forged"],
    ]

    assert_imported(import_file(admin_client, "station", csv_file(rows), "csv"))

    station.refresh_from_db()
    assert station.description == "renamed"
    request = Request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {token}"))
    assert StationTokenAuthentication().authenticate(request)[1] == station
    assert Station.objects.get(code="S2").token_hash == ""


# --- Export, then import again ----------------------------------------------


def build_plant_data():
    plant = factories.plant(code="LYON", name="Lyon, yogurts", time_zone="Europe/Paris")
    factories.plant(code="OLD", name="Closed plant", time_zone="UTC", archived=True)
    line1 = factories.line(code="L1", plant_obj=plant, name="Filling 1")
    line2 = factories.line(code="L2", plant_obj=plant, archived=True)
    factories.station(code="L1-CAP", line_obj=line1, description='Cap camera, "left"\nsecond line')
    factories.station(code="L2-CAP", line_obj=line2, active=False)
    factories.product(sku="YOG-125", name="Yogurt 125 g", lines=[line1, line2])
    factories.product(sku="YOG-0", name="Not made anywhere", archived=True)
    factories.defect_type(code="missing_cap", name="Missing cap", severity="critical")
    factories.defect_type(
        code="smudge", name="Smudge", severity="minor", description="ink", archived=True
    )


ORDER = ["plant", "line", "station", "product", "defecttype"]


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_export_then_import_into_an_empty_database_round_trips(admin_client, kind):
    build_plant_data()
    before = snapshot()
    exported = {name: export_file(admin_client, name, kind) for name in ORDER}
    Product.objects.all().delete()
    Station.objects.all().delete()
    Line.objects.all().delete()
    Plant.objects.all().delete()
    DefectType.objects.all().delete()

    for name in ORDER:
        assert_imported(import_file(admin_client, name, exported[name], kind))

    assert snapshot() == before


def test_reimporting_an_unchanged_export_changes_nothing(admin_client):
    build_plant_data()
    before = snapshot()

    for name in ORDER:
        message = assert_imported(
            import_file(admin_client, name, export_file(admin_client, name, "xlsx"), "xlsx")
        )
        assert "0 new, 0 updated" in message

    assert snapshot() == before


def test_export_writes_cells_starting_with_equals_as_text_not_formulas(admin_client):
    factories.defect_type(code="evil", name='=HYPERLINK("http://example.invalid","x")')

    content = export_file(admin_client, "defecttype", "xlsx")

    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
