"""Build real spreadsheet files and push them through the admin's import and export views."""

import csv
import io

import openpyxl
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse


def xlsx_file(rows: list[list]) -> bytes:
    """An .xlsx workbook whose first sheet holds ``rows`` (the first one is the header)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_file(rows: list[list]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def read_xlsx(content: bytes) -> list[list]:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def _format_index(form, title: str) -> str:
    return next(value for value, label in form.fields["format"].choices if label == title)


def import_file(client: Client, model_name: str, content: bytes, kind: str):
    """Upload ``content`` on the model's admin import page, as a user would; kind is csv or xlsx."""
    url = reverse(f"admin:masterdata_{model_name}_import")
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    upload = SimpleUploadedFile(f"{model_name}s.{kind}", content)
    return client.post(
        url, {"format": _format_index(page.context["form"], kind), "import_file": upload}
    )


def export_file(client: Client, model_name: str, kind: str) -> bytes:
    """Export every row from the model's admin export page with all columns ticked."""
    url = reverse(f"admin:masterdata_{model_name}_export")
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    form = page.context["form"]
    data = {
        name: "on"
        for name, field in form.fields.items()
        if getattr(field, "is_selectable_field", False)
    }
    data["format"] = _format_index(form, kind)
    data["resource"] = "0"
    response = client.post(url, data)
    assert response.status_code == 200, response.status_code
    assert response["Content-Disposition"].startswith("attachment;")
    return response.content


def row_errors(response) -> dict[int, dict[str, list[str]]]:
    """What the import page reports, by row: {row number: {column: [messages]}}."""
    result = response.context["result"]
    found = {row.number: dict(row.error_dict) for row in result.invalid_rows}
    for number, errors in result.row_errors():
        found.setdefault(number, {})["row"] = [str(error.error) for error in errors]
    return found
