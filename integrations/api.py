"""``/api/v1/webhooks/``: subscriptions, their delivery log, resume, test, a new secret.

Quality engineers (the webhook permissions of their role) only. The signing
secret is in the answer of the create and rotate-secret calls, never again.
"""

from django.db.models import Count, Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.models import DeliveryState, WebhookDelivery, WebhookEvent, WebhookSubscription
from integrations.webhooks import services
from masterdata.api.permissions import DeclaredPermission
from masterdata.api.schema import UserTokenOnlySchema
from masterdata.models import Line, Plant

VIEW = "integrations.view_webhooksubscription"
CHANGE = "integrations.change_webhooksubscription"
TAG = "webhooks"


class WebhookPermission(DeclaredPermission):
    message = "Only quality engineers may manage webhooks."
    who = "quality engineers"


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices), allow_empty=False
    )
    plant = serializers.SlugRelatedField(
        slug_field="code", queryset=Plant.objects.all(), allow_null=True, required=False
    )
    line = serializers.SlugRelatedField(
        slug_field="code", queryset=Line.objects.all(), allow_null=True, required=False
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status = serializers.SerializerMethodField()
    pending = serializers.IntegerField(read_only=True, help_text="Deliveries waiting to go out.")

    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "name",
            "url",
            "events",
            "plant",
            "line",
            "active",
            "status",
            "paused_at",
            "paused_reason",
            "consecutive_failures",
            "expired_deliveries",
            "pending",
            "created_by",
            "created_at",
        ]
        read_only_fields = [
            "paused_at",
            "paused_reason",
            "consecutive_failures",
            "expired_deliveries",
            "created_at",
        ]
        extra_kwargs = {"url": {"validators": []}, "name": {"validators": []}}

    def get_status(self, subscription: WebhookSubscription) -> str:
        """``sending``, ``paused`` (after failures: see paused_reason) or ``off``."""
        if not subscription.active:
            return "off"
        return "paused" if subscription.paused_at else "sending"


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret: shown this once, keep it."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "message_id",
            "event_type",
            "scope",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status",
            "last_response_ms",
            "last_error",
            "last_response",
            "created_at",
            "delivered_at",
        ]


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret: shown this once.")


class ResumedSerializer(WebhookSerializer):
    requeued = serializers.IntegerField(read_only=True, help_text="Pending deliveries sent now.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "requeued"]


def subscriptions():
    return WebhookSubscription.objects.select_related("plant", "line", "created_by").annotate(
        pending=Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING))
    )


def _subscription(pk: int) -> WebhookSubscription:
    return generics.get_object_or_404(subscriptions(), pk=pk)


class WebhookViewMixin:
    permission_classes = [WebhookPermission]
    schema = UserTokenOnlySchema()


@extend_schema(tags=[TAG])
class WebhookListView(WebhookViewMixin, generics.ListCreateAPIView):
    serializer_class = WebhookSerializer
    required_permissions = {"GET": VIEW, "POST": "integrations.add_webhooksubscription"}

    def get_queryset(self):
        return subscriptions()

    @extend_schema(responses={201: WebhookCreatedSerializer})
    def post(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.subscription_create(created_by=request.user, **serializer.validated_data)
        body = WebhookCreatedSerializer(_subscription(created.pk)).data
        body["secret"] = created.secret
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=[TAG])
class WebhookDetailView(WebhookViewMixin, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = WebhookSerializer
    required_permissions = {
        "GET": VIEW,
        "PATCH": CHANGE,
        "PUT": CHANGE,
        "DELETE": "integrations.delete_webhooksubscription",
    }

    def get_queryset(self):
        return subscriptions()

    def update(self, request: Request, *args, **kwargs) -> Response:
        subscription = self.get_object()
        serializer = self.get_serializer(
            subscription, data=request.data, partial=kwargs.get("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        services.subscription_update(subscription=subscription, **serializer.validated_data)
        return Response(self.get_serializer(_subscription(subscription.pk)).data)


class DeliveryCursor(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema(tags=[TAG])
class DeliveryListView(WebhookViewMixin, generics.ListAPIView):
    """The delivery log of one webhook, newest first; ``?state=pending|delivered|failed``."""

    serializer_class = DeliverySerializer
    pagination_class = DeliveryCursor
    filter_backends = []
    required_permissions = {"GET": "integrations.view_webhookdelivery"}

    def get_queryset(self):
        subscription = _subscription(self.kwargs["pk"])
        deliveries = WebhookDelivery.objects.filter(subscription=subscription)
        state = self.request.query_params.get("state")
        if state:
            if state not in DeliveryState.values:
                raise serializers.ValidationError(
                    {"state": f"'{state}' is not one of {', '.join(DeliveryState.values)}."}
                )
            deliveries = deliveries.filter(state=state)
        return deliveries


@extend_schema(tags=[TAG], request=None, responses={200: ResumedSerializer})
class WebhookResumeView(WebhookViewMixin, APIView):
    """Lift a pause (and switch the webhook on): what is pending goes out now, in order."""

    required_permissions = {"POST": CHANGE}

    def post(self, request: Request, pk: int) -> Response:
        requeued = services.subscription_resume(subscription=_subscription(pk))
        body = WebhookSerializer(_subscription(pk)).data
        return Response({**body, "requeued": requeued})


@extend_schema(tags=[TAG], request=None, responses={200: DeliverySerializer})
class WebhookTestView(WebhookViewMixin, APIView):
    """Post a signed ``webhook.test`` event now, once; the answer is how the receiver took it."""

    required_permissions = {"POST": CHANGE}

    def post(self, request: Request, pk: int) -> Response:
        delivery = services.subscription_send_test(subscription=_subscription(pk))
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data)


@extend_schema(
    tags=[TAG],
    request=None,
    responses={200: SecretSerializer, 404: OpenApiResponse(description="No such webhook.")},
)
class WebhookRotateSecretView(WebhookViewMixin, APIView):
    """A new signing secret, used from the next delivery on; shown in this answer only."""

    required_permissions = {"POST": CHANGE}

    def post(self, request: Request, pk: int) -> Response:
        secret = services.subscription_rotate_secret(subscription=_subscription(pk))
        return Response({"secret": secret})
