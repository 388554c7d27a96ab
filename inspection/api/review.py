"""Review API: the queue, claims, decisions and their history, undo.

The review page uses these with the inspector's session; integrations use a
user API token. Same rules either way (they are the services'): a decision
on a frame someone else claimed, or decided since, is a 409 with a sentence
saying who.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection import events, selectors, services
from inspection.choices import Decision
from inspection.models import Inspection, Verification
from masterdata.models import DefectType

MAX_COMMENT_CHARS = 2000
MAX_TIME_SPENT_MS = 24 * 3600 * 1000


class CanReview(permissions.BasePermission):
    message = "Your account may not review inspections (Inspectors can)."

    def has_permission(self, request, view) -> bool:
        return selectors.user_can_review(request.user)


class CanViewInspections(permissions.BasePermission):
    message = "Your account may not view inspections."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user.is_authenticated and user.has_perm("inspection.view_inspection"))


def _conflict(exc: DjangoValidationError, code: str) -> Response:
    return Response({"detail": exc.messages[0], "code": code}, status=status.HTTP_409_CONFLICT)


def _claim_response(inspection: Inspection) -> Response:
    return Response(events.claim_payload(inspection))


class VerificationInput(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    defect_type = serializers.SlugRelatedField(
        slug_field="code",
        queryset=DefectType.objects.filter(archived=False),
        required=False,
        allow_null=True,
        help_text="Code of the right defect type; only with decision 'correct'.",
    )
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_COMMENT_CHARS, trim_whitespace=True
    )
    time_spent_ms = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_TIME_SPENT_MS
    )
    supersedes = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="Id of the frame's latest verification, to change that decision.",
    )


class VerificationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    inspection = serializers.IntegerField()
    inspector = serializers.CharField()
    decision = serializers.CharField()
    defect_type = serializers.CharField(allow_null=True)
    comment = serializers.CharField()
    time_spent_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class VerificationsView(APIView):
    """``GET``: a frame's verification history, oldest first. ``POST``: record a decision."""

    def get_permissions(self):
        if self.request.method == "POST":
            return [permissions.IsAuthenticated(), CanReview()]
        return [permissions.IsAuthenticated(), CanViewInspections()]

    @extend_schema(responses=VerificationOutput(many=True))
    def get(self, request, pk: int) -> Response:
        inspection = get_object_or_404(Inspection, pk=pk)
        history = selectors.verification_history(inspection)
        return Response([events.verification_payload(v) for v in history])

    @extend_schema(request=VerificationInput, responses={201: VerificationOutput})
    def post(self, request, pk: int) -> Response:
        inspection = get_object_or_404(Inspection, pk=pk)
        form = VerificationInput(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        supersedes = None
        if data.get("supersedes") is not None:
            supersedes = inspection.verifications.filter(pk=data["supersedes"]).first()
            if supersedes is None:
                raise serializers.ValidationError(
                    {"supersedes": f"Frame #{pk} has no verification #{data['supersedes']}."}
                )
        try:
            verification = services.review_decide(
                inspection=inspection,
                inspector=request.user,
                decision=data["decision"],
                defect_type=data.get("defect_type"),
                comment=data.get("comment", ""),
                time_spent_ms=data.get("time_spent_ms"),
                supersedes=supersedes,
            )
        except services.ReviewClaimHeld as exc:
            return _conflict(exc, "claimed")
        except services.VerificationConflict as exc:
            return _conflict(exc, "already_verified")
        return Response(events.verification_payload(verification), status=status.HTTP_201_CREATED)


class ClaimView(APIView):
    """``POST``: claim a frame while looking at it. ``DELETE``: give it back to the queue."""

    permission_classes = [permissions.IsAuthenticated, CanReview]

    @extend_schema(request=None, responses={200: dict, 409: dict})
    def post(self, request, pk: int) -> Response:
        inspection = get_object_or_404(Inspection, pk=pk)
        try:
            claimed = services.review_claim(inspection=inspection, inspector=request.user)
        except services.ReviewClaimHeld as exc:
            return _conflict(exc, "claimed")
        except services.VerificationConflict as exc:
            return _conflict(exc, "already_verified")
        return _claim_response(claimed)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int) -> Response:
        inspection = get_object_or_404(Inspection, pk=pk)
        services.review_release(inspection=inspection, inspector=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UndoView(APIView):
    """``POST``: take one's latest decision back to decide the frame again (adds, never edits)."""

    permission_classes = [permissions.IsAuthenticated, CanReview]

    @extend_schema(request=None, responses={200: dict, 409: dict})
    def post(self, request, pk: int) -> Response:
        verification = get_object_or_404(Verification, pk=pk)
        try:
            inspection = services.review_undo(verification=verification, inspector=request.user)
        except (services.ReviewClaimHeld, services.VerificationConflict) as exc:
            return _conflict(exc, "conflict")
        return Response(
            {"inspection": events.inspection_payload(inspection), "supersedes": verification.pk}
        )


class QueueView(APIView):
    """``GET``: the next frames for this inspector, most severe then oldest first."""

    permission_classes = [permissions.IsAuthenticated, CanReview]

    @extend_schema(
        responses=inline_serializer(
            "ReviewQueue",
            {"pending": serializers.IntegerField(), "results": serializers.ListField()},
        )
    )
    def get(self, request) -> Response:
        line = request.query_params.get("line", "")
        station = request.query_params.get("station", "")
        try:
            limit = max(1, min(int(request.query_params.get("limit", 50)), 200))
        except ValueError:
            raise serializers.ValidationError({"limit": "Give a whole number."}) from None
        queue = selectors.review_queue(
            inspector=request.user, line=line, station=station, limit=limit
        )
        return Response(
            {
                "pending": selectors.review_pending(line=line, station=station).count(),
                "results": [events.inspection_payload(item) for item in queue],
            }
        )


urlpatterns = [
    path("review/queue/", QueueView.as_view(), name="review-queue"),
    path("inspections/<int:pk>/claim/", ClaimView.as_view(), name="inspection-claim"),
    path(
        "inspections/<int:pk>/verifications/",
        VerificationsView.as_view(),
        name="inspection-verifications",
    ),
    path("verifications/<int:pk>/undo/", UndoView.as_view(), name="verification-undo"),
]
