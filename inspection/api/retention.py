"""A plant's retention policy and storage over the API; the answer for a removed image."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.html import escape
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import DATABASE_UNAVAILABLE
from inspection.models import Inspection, RetentionPolicy
from inspection.retention import policy_for, retention_policy_check
from inspection.storage_usage import plant_storage_status
from masterdata.models import Plant

PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
    '<rect width="320" height="240" fill="#eee"/>'
    '<text x="160" y="115" font-family="sans-serif" font-size="16" text-anchor="middle" '
    'fill="#555">image removed by retention</text>'
    '<text x="160" y="140" font-family="sans-serif" font-size="12" text-anchor="middle" '
    'fill="#777">{when}</text></svg>'
)


def image_removed_message(inspection: Inspection) -> str:
    when = timezone.localtime(inspection.image_deleted_at)
    return (
        f"The image of frame #{inspection.pk} was removed by retention on {when:%Y-%m-%d} "
        "(the plant's retention policy); the inspection itself is kept."
    )


def image_removed_response(request, inspection: Inspection) -> HttpResponse:
    """410 Gone: a placeholder picture for browsers' <img>, one sentence for API clients."""
    accept = request.headers.get("Accept", "")
    if "image/" in accept and "application/json" not in accept:
        when = f"on {timezone.localtime(inspection.image_deleted_at):%Y-%m-%d}"
        body = PLACEHOLDER_SVG.format(when=escape(when))
        response = HttpResponse(body, content_type="image/svg+xml", status=410)
        response["Cache-Control"] = "private, max-age=86400"
        return response
    return Response({"detail": image_removed_message(inspection)}, status=410)


class _HasPerm(BasePermission):
    """The user holds ``read`` for safe methods, ``write`` for the others."""

    read = ""
    write = ""

    def has_permission(self, request, view) -> bool:
        needed = self.read if request.method in ("GET", "HEAD", "OPTIONS") else self.write
        self.message = f"You need the permission {needed}."
        return bool(request.user and request.user.has_perm(needed))


class CanManageRetention(_HasPerm):
    read = "inspection.view_retentionpolicy"
    write = "inspection.change_retentionpolicy"


class CanSeeStorage(_HasPerm):
    read = "inspection.view_plantstorage"
    write = "inspection.view_plantstorage"


DAYS_HELP = "Days kept; null keeps them forever."


class RetentionPolicySerializer(serializers.ModelSerializer):
    plant = serializers.CharField(source="plant.code", read_only=True)
    configured = serializers.SerializerMethodField()
    kept_images_days = serializers.IntegerField(
        min_value=0, max_value=100_000, allow_null=True, help_text=DAYS_HELP
    )
    pass_images_days = serializers.IntegerField(
        min_value=0, max_value=100_000, allow_null=True, help_text=DAYS_HELP
    )
    rows_days = serializers.IntegerField(
        min_value=1, max_value=100_000, allow_null=True, help_text=DAYS_HELP
    )
    pass_sample_percent = serializers.FloatField(min_value=0, max_value=100)

    class Meta:
        model = RetentionPolicy
        fields = [
            "plant",
            "configured",
            "enabled",
            "kept_images_days",
            "pass_images_days",
            "pass_sample_percent",
            "rows_days",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]

    def get_configured(self, obj) -> bool:
        """False: the plant has no policy of its own and the defaults apply."""
        return obj.pk is not None

    def validate(self, attrs: dict) -> dict:
        current = self.instance
        merged = {
            name: attrs.get(name, getattr(current, name))
            for name in ("kept_images_days", "pass_images_days", "rows_days")
        }
        try:
            retention_policy_check(**merged)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return attrs


class PlantRetentionView(APIView):
    permission_classes = [CanManageRetention]

    @extend_schema(
        summary="A plant's retention policy",
        description="The plant's own policy, or the defaults (`configured: false`).",
        responses={200: RetentionPolicySerializer, **DATABASE_UNAVAILABLE},
    )
    def get(self, request, code: str):
        plant = get_object_or_404(Plant, code=code)
        return Response(RetentionPolicySerializer(policy_for(plant)).data)

    @extend_schema(
        summary="Set a plant's retention policy",
        description="Fields left out keep their current (or default) value. Applied by the "
        "next retention run.",
        request=RetentionPolicySerializer,
        responses={
            200: RetentionPolicySerializer,
            400: OpenApiResponse(description="Contradicting or out-of-range periods."),
            **DATABASE_UNAVAILABLE,
        },
    )
    def put(self, request, code: str):
        plant = get_object_or_404(Plant, code=code)
        with transaction.atomic():
            Plant.objects.select_for_update().filter(pk=plant.pk).first()
            policy = policy_for(plant)
            serializer = RetentionPolicySerializer(policy, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            serializer.save(plant=plant)
        return Response(serializer.data)


class PlantStorageView(APIView):
    permission_classes = [CanSeeStorage]

    @extend_schema(
        summary="A plant's stored images, their growth and the days left",
        responses={
            200: inline_serializer(
                "PlantStorage",
                {
                    "plant": serializers.CharField(),
                    "measured_at": serializers.DateTimeField(),
                    "image_bytes": serializers.IntegerField(),
                    "image_files": serializers.IntegerField(),
                    "unknown_size_files": serializers.IntegerField(),
                    "added_per_day_7d": serializers.IntegerField(),
                    "added_per_day_30d": serializers.IntegerField(),
                    "net_growth_per_day_7d": serializers.IntegerField(),
                    "net_growth_per_day_30d": serializers.IntegerField(),
                    "daily": serializers.ListField(child=serializers.ListField()),
                    "storage": serializers.DictField(),
                },
            ),
            **DATABASE_UNAVAILABLE,
        },
    )
    def get(self, request, code: str):
        plant = get_object_or_404(Plant, code=code)
        return Response(plant_storage_status(plant).as_dict())
