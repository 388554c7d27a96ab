"""Datasets in admin: counts per class and split, label meanings, upload (an import job whose
progress the page follows), a paged thumbnail grid, relabel and remove, split, snapshots and
their export (a job whose zip is downloaded here).

Every page that changes something calls a service (models_registry.datasets.services);
images and exports are served by views that check permissions, never by a media URL.
"""

from functools import partial
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from common.admin_forms import ServiceAdminMixin, add_service_errors, admin_change_url
from common.models import Job, JobState
from models_registry.datasets import export, selectors, services
from models_registry.datasets.choices import Split
from models_registry.datasets.forms import (
    ArchiveUploadForm,
    DatasetChangeForm,
    DatasetCreateForm,
    DatasetLabelForm,
    DatasetLabelFormSet,
    RelabelForm,
    SnapshotForm,
    SplitForm,
)
from models_registry.datasets.kinds import DATASET_EXPORT
from models_registry.datasets.models import (
    Dataset,
    DatasetImage,
    DatasetLabel,
    DatasetSnapshot,
)

TEMPLATES = "admin/models_registry/dataset"
GRID_PAGE_SIZE = 48
SPLIT_COLUMNS = [Split.TRAIN, Split.VALIDATION, Split.TEST, Split.UNASSIGNED]
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "TIFF": "image/tiff"}
FINISHED = {JobState.DONE, JobState.FAILED, JobState.CANCELLED}


def dataset_url(dataset: Dataset, view: str, *args) -> str:
    """The URL of one of a dataset's admin pages ('upload', 'images', 'split', ...)."""
    return reverse(f"admin:models_registry_dataset_{view}", args=[dataset.pk, *args])


def grid_of_label(image: DatasetImage) -> str:
    return f"{dataset_url(image.dataset, 'images')}?{urlencode({'label': image.label.name})}"


def count_table(dataset: Dataset) -> list[dict]:
    """Rows per label, with its count per split (and a link to its grid) and its total."""
    counts: dict[tuple[str, str], int] = {}
    rows = (
        selectors.dataset_images(dataset=dataset)
        .values_list("label__name", "split")
        .annotate(n=Count("id"))
        .order_by()
    )
    for label, split, n in rows:
        counts[(label, split)] = n
    grid = dataset_url(dataset, "images")
    table = []
    for label in dataset.labels.select_related("defect_type").order_by("name"):
        cells = [
            {
                "n": counts.get((label.name, split), 0),
                "url": f"{grid}?{urlencode({'label': label.name, 'split': split})}",
            }
            for split in SPLIT_COLUMNS
        ]
        table.append(
            {
                "label": label,
                "cells": cells,
                "total": sum(cell["n"] for cell in cells),
                "url": f"{grid}?{urlencode({'label': label.name})}",
            }
        )
    return table


def dataset_jobs(dataset: Dataset) -> list[Job]:
    """The dataset's recent imports and its snapshots' exports, newest first."""
    snapshot_type = ContentType.objects.get_for_model(DatasetSnapshot)
    snapshot_ids = [str(pk) for pk in dataset.snapshots.values_list("pk", flat=True)]
    jobs = Job.objects.filter(
        Q(target_type=ContentType.objects.get_for_model(Dataset), target_id=str(dataset.pk))
        | Q(target_type=snapshot_type, target_id__in=snapshot_ids)
    )
    return list(jobs.select_related("requested_by").order_by("-created")[:10])


class DatasetLabelInline(admin.TabularInline):
    model = DatasetLabel
    form = DatasetLabelForm
    formset = DatasetLabelFormSet
    fields = ("name", "meaning")
    readonly_fields = ("name",)
    extra = 0
    can_delete = False
    verbose_name = "label"
    verbose_name_plural = "labels and what they mean"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("defect_type")

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # labels come with images


@admin.register(Dataset)
class DatasetAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = DatasetChangeForm
    inlines = [DatasetLabelInline]
    list_display = ("name", "image_count", "label_list", "snapshot_count", "updated_at")
    search_fields = ("name", "description")
    fields = ("name", "description", "created_by", "created_at")
    readonly_fields = ("name", "created_by", "created_at")
    change_form_template = f"{TEMPLATES}/change_form.html"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # snapshots and evaluations refer to the images

    def get_queryset(self, request):
        active = Q(images__removed_at__isnull=True)
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_images=Count("images", filter=active, distinct=True),
                n_snapshots=Count("snapshots", distinct=True),
            )
            .prefetch_related("labels")
        )

    @admin.display(description="images", ordering="n_images")
    def image_count(self, obj: Dataset) -> int:
        return obj.n_images

    @admin.display(description="labels")
    def label_list(self, obj: Dataset) -> str:
        return ", ".join(label.name for label in obj.labels.all()) or "—"

    @admin.display(description="snapshots", ordering="n_snapshots")
    def snapshot_count(self, obj: Dataset) -> int:
        return obj.n_snapshots

    # Add, change (description and label meanings)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        return self.service_add_view(
            request,
            form_class=DatasetCreateForm,
            create=lambda form: services.dataset_create(
                **form.cleaned_data, created_by=request.user
            ),
            success=lambda dataset: f"Created {dataset}. Upload its images next.",
            title="Add a dataset",
        )

    def save_model(self, request, obj: Dataset, form, change: bool) -> None:
        services.dataset_update(dataset=obj, description=form.cleaned_data["description"])

    def save_formset(self, request, form, formset, change: bool) -> None:
        if not isinstance(formset, DatasetLabelFormSet):
            return super().save_formset(request, form, formset, change)
        mapping = formset.mapping()
        if mapping:
            services.dataset_labels_update(dataset=form.instance, mapping=mapping)
        # What construct_change_message reads after a formset.save().
        formset.new_objects, formset.deleted_objects = [], []
        formset.changed_objects = [
            (f.instance, ["meaning"]) for f in formset.forms if f.instance.name in mapping
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            user = request.user
            context.update(
                counts=count_table(obj),
                split_columns=[Split(s).label for s in SPLIT_COLUMNS],
                snapshots=obj.snapshots.select_related("created_by").order_by("-number"),
                jobs=dataset_jobs(obj),
                last_split=obj.splits.order_by("-number").first(),
                upload_url=dataset_url(obj, "upload"),
                grid_url=dataset_url(obj, "images"),
                split_url=dataset_url(obj, "split"),
                snapshot_url=dataset_url(obj, "snapshot"),
                can_upload=user.has_perm("models_registry.add_datasetimage"),
                can_split=user.has_perm("models_registry.change_dataset"),
                can_snapshot=user.has_perm("models_registry.add_datasetsnapshot"),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # Pages of a dataset

    def get_urls(self):
        pages = [
            ("upload/", self.upload_view, "upload"),
            ("jobs/<uuid:job_id>/", self.job_view, "job"),
            ("images/", self.grid_view, "images"),
            ("images/<int:image_id>/", self.image_view, "image"),
            ("images/<int:image_id>/remove/", self.image_remove_view, "image_remove"),
            ("images/<int:image_id>/file/", partial(self.image_file_view, part="file"), "file"),
            (
                "images/<int:image_id>/thumbnail/",
                partial(self.image_file_view, part="thumbnail"),
                "thumbnail",
            ),
            ("split/", self.split_view, "split"),
            ("snapshot/", self.snapshot_view, "snapshot"),
            ("snapshots/<int:number>/export/", self.export_view, "export"),
            ("exports/<uuid:job_id>/download/", self.download_view, "download"),
        ]
        return [
            path(
                f"<int:object_id>/{route}",
                self.admin_site.admin_view(view),
                name=f"models_registry_dataset_{name}",
            )
            for route, view, name in pages
        ] + super().get_urls()

    def _dataset(self, request: HttpRequest, object_id: int, permission: str = "") -> Dataset:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if permission and not request.user.has_perm(f"models_registry.{permission}"):
            raise PermissionDenied
        return get_object_or_404(Dataset, pk=object_id)

    def _form_page(self, request, *, form_class, apply, done, title, template, **context):
        """A form whose valid POST calls ``apply(form)`` (a service); a refusal shows on it."""
        post = request.method == "POST"
        form = form_class(request.POST if post else None, request.FILES if post else None)
        if post and form.is_valid():
            try:
                with transaction.atomic():
                    result = apply(form)
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                return HttpResponseRedirect(done(result))
        return self.service_page(
            request,
            template=template,
            title=title,
            form=form,
            has_errors=bool(form.errors),
            media=self.media + form.media,
            **context,
        )

    def upload_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        dataset = self._dataset(request, object_id, "add_datasetimage")
        return self._form_page(
            request,
            form_class=ArchiveUploadForm,
            apply=lambda form: services.dataset_import_start(
                dataset=dataset, archive=form.cleaned_data["archive"], requested_by=request.user
            ),
            done=lambda job: dataset_url(dataset, "job", job.pk),
            title=f"Upload images to {dataset}",
            template=f"{TEMPLATES}/upload.html",
            dataset=dataset,
        )

    def job_view(self, request: HttpRequest, object_id: int, job_id) -> HttpResponse:
        """A job of this dataset: live progress while it runs, its report when it ends."""
        dataset = self._dataset(request, object_id)
        job = get_object_or_404(Job.objects.select_related("requested_by"), pk=job_id)
        if not self._targets(job, dataset):
            raise Http404("This job does not work on this dataset.")
        result = job.result or {}
        return self.service_page(
            request,
            template=f"{TEMPLATES}/job.html",
            title=f"{dataset}: {job.kind.replace('_', ' ')}",
            dataset=dataset,
            job=job,
            running=job.state not in FINISHED,
            percent=round(job.progress * 100),
            job_api_url=reverse("job-detail", args=[job.pk]),
            per_label=sorted((result.get("per_label") or {}).items()),
            skipped=result.get("skipped") or [],
            download_url=(
                dataset_url(dataset, "download", job.pk)
                if job.kind == DATASET_EXPORT and job.state == JobState.DONE
                else ""
            ),
            dataset_url=admin_change_url(dataset),
        )

    @staticmethod
    def _targets(job: Job, dataset: Dataset) -> bool:
        target = job.target
        if isinstance(target, Dataset):
            return target.pk == dataset.pk
        return isinstance(target, DatasetSnapshot) and target.dataset_id == dataset.pk

    def grid_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """A page of thumbnails of one label and/or split (made at import, never here)."""
        dataset = self._dataset(request, object_id, "view_datasetimage")
        label, split = request.GET.get("label") or None, request.GET.get("split") or None
        if split is not None and split not in Split.values:
            split = None
        images = selectors.dataset_images(dataset=dataset, label=label, split=split)
        page = Paginator(images, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
        base = dataset_url(dataset, "images")
        return self.service_page(
            request,
            template=f"{TEMPLATES}/grid.html",
            title=f"{dataset}: {label or 'every label'}, {split or 'every split'}",
            dataset=dataset,
            page=page,
            label=label or "",
            split=split or "",
            labels=dataset.labels.order_by("name").values_list("name", flat=True),
            splits=Split.values,
            base_url=base,
            dataset_url=admin_change_url(dataset),
        )

    def _image(self, dataset: Dataset, image_id: int) -> DatasetImage:
        return get_object_or_404(
            DatasetImage.objects.select_related("label", "import_job"), pk=image_id, dataset=dataset
        )

    def image_view(self, request: HttpRequest, object_id: int, image_id: int) -> HttpResponse:
        """One image at full size, its facts, and relabelling (a POST of the label form)."""
        dataset = self._dataset(request, object_id, "view_datasetimage")
        image = self._image(dataset, image_id)
        if request.method == "POST" and not request.user.has_perm(
            "models_registry.change_datasetimage"
        ):
            raise PermissionDenied
        return self._form_page(
            request,
            form_class=RelabelForm,
            apply=lambda form: services.image_relabel(
                image=image, label=form.cleaned_data["label"]
            ),
            done=lambda changed: self._relabelled(request, changed),
            title=f"{dataset}: {image.original_name or image.sha256[:12]}",
            template=f"{TEMPLATES}/image.html",
            dataset=dataset,
            image=image,
            file_url=dataset_url(dataset, "file", image.pk),
            remove_url=dataset_url(dataset, "image_remove", image.pk),
            grid_url=grid_of_label(image),
            labels=dataset.labels.order_by("name").values_list("name", flat=True),
            can_change=request.user.has_perm("models_registry.change_datasetimage"),
            can_remove=request.user.has_perm("models_registry.delete_datasetimage"),
        )

    def _relabelled(self, request: HttpRequest, image: DatasetImage) -> str:
        self.message_user(
            request, f"The image is now labelled {image.label.name}.", messages.SUCCESS
        )
        return dataset_url(image.dataset, "image", image.pk)

    def image_remove_view(self, request: HttpRequest, object_id: int, image_id: int):
        dataset = self._dataset(request, object_id, "delete_datasetimage")
        image = self._image(dataset, image_id)
        grid = grid_of_label(image)

        def remove(objects) -> None:
            if self.call_service(
                request,
                partial(services.image_remove, image=image),
                success=f"Removed {image} from {dataset}; snapshots that hold it keep it.",
            ):
                self.log_change(request, dataset, f"Removed image {image.sha256[:12]}.")

        return self.confirm_then_apply(
            request,
            [image],
            apply=remove,
            title=f"Remove an image from {dataset}",
            template=f"{TEMPLATES}/image_remove.html",
            done_url=grid,
            dataset=dataset,
            thumbnail_url=dataset_url(dataset, "thumbnail", image.pk),
        )

    def image_file_view(self, request: HttpRequest, object_id: int, image_id: int, *, part: str):
        """The image's original bytes or its thumbnail, to whoever may view dataset images."""
        dataset = self._dataset(request, object_id, "view_datasetimage")
        image = self._image(dataset, image_id)
        stored = getattr(image, part)
        if not stored:
            raise Http404("This image has no thumbnail.")
        # Images are bounded (the import's byte limit): one read beats streaming a sync
        # iterator through ASGI.
        with stored.open("rb") as handle:
            data = handle.read()
        content_type = "image/jpeg" if part == "thumbnail" else CONTENT_TYPES[image.format]
        response = HttpResponse(data, content_type=content_type)
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def split_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        dataset = self._dataset(request, object_id, "change_dataset")

        def split(form: SplitForm):
            made = services.dataset_split(
                dataset=dataset, created_by=request.user, **form.arguments()
            )
            self.log_change(request, dataset, f"Split {made.number}: {made.parameters}.")
            return made

        return self._form_page(
            request,
            form_class=SplitForm,
            apply=split,
            done=lambda made: self._done(
                request, dataset, f"Split {made.number} made: {made.counts}."
            ),
            title=f"Split {dataset}",
            template=f"{TEMPLATES}/split.html",
            dataset=dataset,
            last_split=dataset.splits.order_by("-number").first(),
        )

    def snapshot_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        dataset = self._dataset(request, object_id, "add_datasetsnapshot")

        def freeze(form: SnapshotForm) -> DatasetSnapshot:
            snapshot = services.snapshot_create(
                dataset=dataset, created_by=request.user, note=form.cleaned_data["note"]
            )
            self.log_change(request, dataset, f"Snapshot {snapshot.number}.")
            return snapshot

        return self._form_page(
            request,
            form_class=SnapshotForm,
            apply=freeze,
            done=lambda snapshot: self._done(
                request, dataset, f"Snapshot {snapshot.number}: {snapshot.image_count} images."
            ),
            title=f"Snapshot {dataset}",
            template=f"{TEMPLATES}/snapshot.html",
            dataset=dataset,
        )

    def _done(self, request: HttpRequest, dataset: Dataset, text: str) -> str:
        self.message_user(request, text, messages.SUCCESS)
        return admin_change_url(dataset)

    def export_view(self, request: HttpRequest, object_id: int, number: int) -> HttpResponse:
        """POST: queue the export of a snapshot and follow it on the job page."""
        dataset = self._dataset(request, object_id, "view_datasetsnapshot")
        snapshot = get_object_or_404(DatasetSnapshot, dataset=dataset, number=number)
        if request.method != "POST":
            return HttpResponseRedirect(admin_change_url(dataset))
        queued: list[Job] = []

        def note(job: Job) -> str:
            queued.append(job)
            return f"The export of {snapshot} is queued; this page follows it."

        if not self.call_service(
            request,
            partial(services.snapshot_export_start, snapshot=snapshot, requested_by=request.user),
            success=note,
        ):
            return HttpResponseRedirect(admin_change_url(dataset))
        return HttpResponseRedirect(dataset_url(dataset, "job", queued[0].pk))

    def download_view(self, request: HttpRequest, object_id: int, job_id) -> HttpResponse:
        dataset = self._dataset(request, object_id, "view_datasetsnapshot")
        job = get_object_or_404(Job, pk=job_id, kind=DATASET_EXPORT, state=JobState.DONE)
        if not self._targets(job, dataset):
            raise Http404("This export is not one of this dataset's.")
        return export.zip_response(job)
