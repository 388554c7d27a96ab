"""Admin pages whose work a service does: one page frame, one add flow, one confirmation step.

A service refuses with a ValidationError; these helpers show it where the person
acts (on the form, or as a message after an action) and keep nothing of the
refused attempt. ReadOnlyAdmin is for the rows only services write.
Imports only Django, so every app's admin can use it.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

T = TypeVar("T")
Row = TypeVar("Row", bound=models.Model)

SERVICE_FORM_TEMPLATE = "admin/service_form.html"
CONFIRM_TEMPLATE = "admin/service_confirm.html"


def admin_change_url(obj: models.Model) -> str:
    """The admin page of one row."""
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def add_service_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: on the field it names, else on top."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for field, field_messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, field_messages)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only services write: listed and shown in admin, never added, edited or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class ServiceAdminMixin:
    """For a ModelAdmin whose pages and actions call services instead of saving rows itself.

    Mix in before ``admin.ModelAdmin`` (or a subclass of it).
    """

    def service_page(
        self, request: HttpRequest, *, template: str, title: str, **context: Any
    ) -> TemplateResponse:
        """A page in the admin's frame (header, breadcrumbs to this model's list)."""
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "has_view_permission": self.has_view_permission(request),
                **context,
            },
        )

    def service_add_view(
        self,
        request: HttpRequest,
        *,
        form_class: type[forms.BaseForm],
        create: Callable[..., Row],
        success: Callable[[Row], str],
        title: str,
        template: str = SERVICE_FORM_TEMPLATE,
        initial: Mapping[str, Any] | None = None,
        formsets: Mapping[str, type[forms.BaseFormSet]] | None = None,
        **context: Any,
    ) -> HttpResponse:
        """The add page of a row that a service makes.

        GET shows the form (with ``initial``) and the formsets (classes by prefix).
        A valid POST calls ``create(form, **formsets)``: a ValidationError it raises
        shows on the form and nothing of the attempt is kept; otherwise the addition
        is logged, ``success(row)`` is shown and the browser goes to the row's page.
        """
        if not self.has_add_permission(request):
            raise PermissionDenied
        data, files = (request.POST, request.FILES) if request.method == "POST" else (None, None)
        form = form_class(data, files, initial=initial)
        sets = {prefix: cls(data, files, prefix=prefix) for prefix, cls in (formsets or {}).items()}
        if data is not None and all([form.is_valid(), *(s.is_valid() for s in sets.values())]):
            try:
                # Whatever the service wrote before it refused goes with the refusal.
                with transaction.atomic():
                    row = create(form, **sets)
                    self.log_addition(request, row, [{"added": {}}])
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                self.message_user(request, success(row), messages.SUCCESS)
                return HttpResponseRedirect(admin_change_url(row))
        return self.service_page(
            request,
            template=template,
            title=title,
            form=form,
            has_errors=bool(form.errors) or any(s.total_error_count() for s in sets.values()),
            media=self.media + form.media,
            **sets,
            **context,
        )

    def confirm_then_apply(
        self,
        request: HttpRequest,
        objects: Sequence[models.Model],
        *,
        apply: Callable[[Sequence[models.Model]], HttpResponse | None],
        title: str,
        template: str = CONFIRM_TEMPLATE,
        done_url: str | None = None,
        **context: Any,
    ) -> HttpResponse | None:
        """Ask first, then do: the confirmation page lists ``objects``; confirming calls ``apply``.

        From a list action the page posts the selection back with ``post=yes``;
        from an object's own URL a GET asks and a POST does. When ``apply``
        returns no page, the browser goes to ``done_url`` (an action without one
        goes back to the list, as Django's actions do).
        """
        action = request.POST.get("action")
        confirmed = request.POST.get("post") == "yes" if action else request.method == "POST"
        if not confirmed:
            return self.service_page(
                request,
                template=template,
                title=title,
                objects=objects,
                action=action,
                action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
                **context,
            )
        response = apply(objects)
        if response is None and done_url is not None:
            return HttpResponseRedirect(done_url)
        return response

    def call_service(
        self,
        request: HttpRequest,
        call: Callable[[], T],
        *,
        success: str | Callable[[T], str] | None = None,
    ) -> bool:
        """Call a service for one object of an action; a refusal becomes an error message.

        Returns whether the service did its work; ``success`` (a message, or made
        from the service's result) is shown if it did.
        """
        try:
            result = call()
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return False
        if success is not None:
            text = success if isinstance(success, str) else success(result)
            self.message_user(request, text, messages.SUCCESS)
        return True
