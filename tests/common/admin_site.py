"""An admin site with one page made by services, to test common.admin_forms on its own.

Defect types stand in for any row; the two services below are small, real and
written here so that each way a service can refuse is reachable from a form.
"""

from functools import partial

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import path

from common.admin_forms import ServiceAdminMixin
from config.urls import urlpatterns as project_urls
from masterdata.choices import Severity
from masterdata.models import DefectType


def defect_type_register(*, code: str, name: str, severity: str) -> DefectType:
    """Writes first and checks after, as a multi-step service may: the refusal must undo it."""
    defect_type = DefectType.objects.create(code=code, name=name, severity=severity)
    if DefectType.objects.filter(name=name).count() > 1:
        raise ValidationError({"name": "Another defect type already has this name."})
    if severity == Severity.CRITICAL:
        raise ValidationError({"description": "A critical defect type needs a description."})
    return defect_type


def defect_type_retire(*, defect_type: DefectType) -> DefectType:
    if defect_type.severity == Severity.CRITICAL:
        raise ValidationError(f"{defect_type.code} is critical: it stays in the pickers.")
    defect_type.archived = True
    defect_type.save(update_fields=["archived"])
    return defect_type


class DefectTypeRegisterForm(forms.Form):
    code = forms.CharField()
    name = forms.CharField()
    severity = forms.ChoiceField(choices=Severity.choices)


class DefectTypeServiceAdmin(ServiceAdminMixin, admin.ModelAdmin):
    actions = ["retire"]

    def add_view(self, request, form_url="", extra_context=None):
        return self.service_add_view(
            request,
            form_class=DefectTypeRegisterForm,
            create=lambda form: defect_type_register(**form.cleaned_data),
            success=lambda defect_type: f"Registered {defect_type.code}.",
            title="Register a defect type",
        )

    @admin.action(description="Retire selected defect types")
    def retire(self, request, queryset):
        return self.confirm_then_apply(
            request,
            list(queryset),
            apply=partial(self._retire_each, request),
            title="Retire these defect types?",
        )

    def _retire_each(self, request, defect_types) -> None:
        for defect_type in defect_types:
            self.call_service(
                request,
                partial(defect_type_retire, defect_type=defect_type),
                success=lambda retired: f"Retired {retired.code}.",
            )


site = admin.AdminSite(name="admin")  # the name admin_change_url reverses
site.register(DefectType, DefectTypeServiceAdmin)

# The project's other pages stay, for the links of its error pages.
urlpatterns = [
    path("admin/", site.urls),
    *(url for url in project_urls if getattr(url, "namespace", None) != "admin"),
]
