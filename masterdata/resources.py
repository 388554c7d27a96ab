"""Spreadsheet import and export of master data (django-import-export resources).

Rows are matched on their code (SKU for products): exporting, editing and
importing a file updates rows in place and adds new ones; nothing is deleted.
Every problem in a row becomes an error on that row, and the admin imports a
file in one transaction, so a file with any wrong row imports nothing.
Station device tokens are never exported nor imported.
"""

from django.core.exceptions import ValidationError
from django.db.models import Model, TextChoices
from import_export import fields, resources, widgets

from masterdata.choices import Severity
from masterdata.models import DefectType, Line, Plant, Product, Station


def _text(value: object) -> str:
    """A cell as text: spreadsheets hand numbers (``12``, ``12.0``) for codes typed as digits."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class TextWidget(widgets.CharWidget):
    """Text with surrounding spaces removed; an empty cell is an empty string."""

    def clean(self, value, row=None, **kwargs):
        return _text(value)


class YesNoWidget(widgets.Widget):
    """A yes/no column; an empty cell takes the field's default, anything unclear is an error."""

    TRUE = {"yes", "y", "true", "1"}
    FALSE = {"no", "n", "false", "0"}

    def __init__(self, *, default: bool):
        super().__init__()
        self.default = default

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            return value
        text = _text(value).lower()
        if not text:
            return self.default
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValueError(f"Write yes or no, not '{_text(value)}'.")

    def render(self, value, obj=None, **kwargs):
        return "yes" if value else "no"


class ChoiceWidget(widgets.Widget):
    """One of a TextChoices' values, in any letter case."""

    def __init__(self, choices: type[TextChoices]):
        super().__init__()
        self.choices = choices

    def clean(self, value, row=None, **kwargs):
        text = _text(value).lower()
        if text not in self.choices.values:
            raise ValueError(f"Use one of {', '.join(self.choices.values)}, not '{_text(value)}'.")
        return text

    def render(self, value, obj=None, **kwargs):
        return value or ""


class CodeForeignKeyWidget(widgets.ForeignKeyWidget):
    """A required foreign key written as the code of the row it points at."""

    def __init__(self, model: type[Model], field: str = "code"):
        super().__init__(model, field=field)

    def clean(self, value, row=None, **kwargs):
        code = _text(value)
        name = self.model._meta.verbose_name
        if not code:
            raise ValueError(f"Give the code of a {name}.")
        try:
            return super().clean(code, row, **kwargs)
        except self.model.DoesNotExist:
            raise ValueError(f"No {name} has the code '{code}'.") from None


class CodeListWidget(widgets.ManyToManyWidget):
    """A many-to-many relation written as codes separated by commas; unknown codes are errors."""

    def __init__(self, model: type[Model], field: str = "code"):
        super().__init__(model, separator=",", field=field)

    def clean(self, value, row=None, **kwargs):
        codes = [code for code in (c.strip() for c in _text(value).split(",")) if code]
        found = self.model.objects.filter(**{f"{self.field}__in": codes})
        missing = sorted(set(codes) - {getattr(obj, self.field) for obj in found})
        if missing:
            names = self.model._meta.verbose_name_plural
            raise ValueError(f"No {names} have the codes {', '.join(missing)}.")
        return found

    def render(self, value, obj=None, **kwargs):
        if value is None:
            return ""
        return ", ".join(getattr(related, self.field) for related in value.all())


def _field(name: str, widget: widgets.Widget | None = None) -> fields.Field:
    return fields.Field(attribute=name, column_name=name, widget=widget or TextWidget())


class MasterDataResource(resources.ModelResource):
    """Validates every row like a form would, and refuses a code that appears twice in one file."""

    def before_import(self, dataset, **kwargs):
        self._row_of_code: dict[str, int] = {}
        # "Time zone" and "time_zone" are the same column to a person.
        dataset.headers = [_text(h).lower().replace(" ", "_") for h in dataset.headers or []]
        key = self._meta.import_id_fields[0]
        if key not in dataset.headers:
            columns = ", ".join(f.column_name for f in self.get_user_visible_fields())
            raise ValueError(
                f"The first row must name the columns ({columns}); no '{key}' column was found."
            )
        if not len(dataset):
            raise ValueError("The file has a header but no rows.")

    def import_instance(self, instance, row, row_number=None, **kwargs):
        errors = {}
        try:
            super().import_instance(instance, row, row_number=row_number, **kwargs)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        # Many-to-many columns are only read after the row is saved; read them
        # now too so an unknown code is reported with the row's other errors.
        for field in self.get_import_fields():
            if isinstance(field.widget, widgets.ManyToManyWidget) and field.column_name in row:
                try:
                    field.clean(row, **kwargs)
                except ValueError as error:
                    errors[field.attribute] = [str(error)]
        key = self._meta.import_id_fields[0]
        code = _text(row.get(key))
        first = self._row_of_code.setdefault(code, row_number) if code else row_number
        if first != row_number:
            errors.setdefault(key, []).append(f"'{code}' is already in row {first} of this file.")
        if errors:
            raise ValidationError(errors)


class PlantResource(MasterDataResource):
    code = _field("code")
    name = _field("name")
    time_zone = _field("time_zone")
    archived = _field("archived", YesNoWidget(default=False))

    class Meta:
        model = Plant
        fields = ("code", "name", "time_zone", "archived")
        import_id_fields = ("code",)
        clean_model_instances = True
        skip_unchanged = True


class LineResource(MasterDataResource):
    code = _field("code")
    name = _field("name")
    plant = _field("plant", CodeForeignKeyWidget(Plant))
    archived = _field("archived", YesNoWidget(default=False))

    class Meta:
        model = Line
        fields = ("code", "name", "plant", "archived")
        import_id_fields = ("code",)
        clean_model_instances = True
        skip_unchanged = True

    def get_queryset(self):
        return super().get_queryset().select_related("plant")


class StationResource(MasterDataResource):
    code = _field("code")
    line = _field("line", CodeForeignKeyWidget(Line))
    description = _field("description")
    active = _field("active", YesNoWidget(default=True))

    class Meta:
        model = Station
        # Never the token fields: a device token is shown once and stored only as a hash.
        fields = ("code", "line", "description", "active")
        import_id_fields = ("code",)
        clean_model_instances = True
        skip_unchanged = True

    def get_queryset(self):
        return super().get_queryset().select_related("line")


class ProductResource(MasterDataResource):
    sku = _field("sku")
    name = _field("name")
    lines = _field("lines", CodeListWidget(Line))
    archived = _field("archived", YesNoWidget(default=False))

    class Meta:
        model = Product
        fields = ("sku", "name", "lines", "archived")
        import_id_fields = ("sku",)
        clean_model_instances = True
        skip_unchanged = True

    def get_queryset(self):
        return super().get_queryset().prefetch_related("lines")


class DefectTypeResource(MasterDataResource):
    code = _field("code")
    name = _field("name")
    severity = _field("severity", ChoiceWidget(Severity))
    description = _field("description")
    archived = _field("archived", YesNoWidget(default=False))

    class Meta:
        model = DefectType
        fields = ("code", "name", "severity", "description", "archived")
        import_id_fields = ("code",)
        clean_model_instances = True
        skip_unchanged = True
