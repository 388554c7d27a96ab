"""Master data over the API, with admin's rules: permissions, protected deletes, archive.

Each view looks the row up by its code (products by SKU), checks the request's
shape with a serializer and calls one service of masterdata.services; a
refused delete is a 409 naming what refers to the row.
"""

from typing import Any

from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from masterdata import services
from masterdata.api import serializers as s
from masterdata.api.permissions import MasterDataPermission
from masterdata.api.schema import ErrorSerializer, UserTokenOnlySchema
from masterdata.models import DefectType, Line, Plant, Product, Shift, Station

TAG = "master data"
ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No or a wrong user API token."),
    403: OpenApiResponse(ErrorSerializer, description="The role lacks the permission."),
}
BAD_REQUEST = {400: OpenApiResponse(ErrorSerializer, description="Nothing was changed.")}
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such row.")}
DELETE_REFUSED = {
    409: OpenApiResponse(
        ErrorSerializer,
        description="Rows refer to it (counted per kind); archive or deactivate it instead.",
    )
}


def conflict(error: services.DeleteRefused) -> Response:
    return Response({"detail": error.messages[0]}, status=status.HTTP_409_CONFLICT)


class MasterDataView(GenericAPIView):
    """User tokens (or a session) holding the model's Django permission for the method."""

    schema = UserTokenOnlySchema()
    permission_classes = [MasterDataPermission]
    parser_classes = [JSONParser]
    model: type[Model] = Plant
    key = "code"  # the URL names a row by this field

    @property
    def required_permissions(self) -> dict[str, str]:
        opts = self.model._meta
        perm = f"{opts.app_label}.{{}}_{opts.model_name}"
        change = perm.format("change")
        return {
            "GET": perm.format("view"),
            "POST": perm.format("add"),
            "PATCH": change,
            "PUT": change,
            "DELETE": perm.format("delete"),
        }

    def get_queryset(self) -> QuerySet:
        return self.model.objects.all()

    def get_object(self) -> Model:
        value = self.kwargs[self.key]
        obj = self.get_queryset().filter(**{self.key: value}).first()
        if obj is None:
            noun = self.model._meta.verbose_name
            raise NotFound(f"There is no {noun} with {self.key} '{value}'.")
        return obj

    def new_object(self) -> Model:
        return self.model()

    def save(self, obj: Model, data: dict[str, Any]) -> Model:
        """Create or change ``obj`` through the service; a product's lines go alongside."""
        lines = data.pop("lines", None)
        return services.masterdata_save(obj=obj, fields=data, lines=lines)

    def respond(self, obj: Model, code: int = status.HTTP_200_OK, **headers) -> Response:
        fresh = self.get_queryset().get(pk=obj.pk)
        return Response(self.get_serializer(fresh).data, status=code, headers=headers)


class ListView(MasterDataView):
    def get(self, request: Request, **kwargs) -> Response:
        return Response(self.get_serializer(self.get_queryset(), many=True).data)

    def post(self, request: Request, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        obj = self.save(self.new_object(), dict(serializer.validated_data))
        response = self.respond(obj, status.HTTP_201_CREATED)
        response["Location"] = response.data["url"]
        return response


class DetailView(MasterDataView):
    def get(self, request: Request, **kwargs) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def patch(self, request: Request, **kwargs) -> Response:
        obj = self.get_object()
        serializer = self.get_serializer(obj, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return self.respond(self.save(obj, dict(serializer.validated_data)))

    def delete(self, request: Request, **kwargs) -> Response:
        try:
            services.masterdata_delete(obj=self.get_object())
        except services.DeleteRefused as error:
            return conflict(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


def documented(noun: str, serializer, *, created=None, retire: str = "archived: true"):
    """The OpenAPI description of the list view and the detail view of ``noun``."""
    slug = noun.replace(" ", "_") + "s"

    def operation(method: str, action: str, summary: str, **fields):
        return {
            method: extend_schema(
                tags=[TAG], operation_id=f"{slug}_{action}", summary=summary, **fields
            )
        }

    listing = extend_schema_view(
        **operation(
            "get", "list", f"List {noun}s", responses={200: serializer(many=True), **ERRORS}
        ),
        **operation(
            "post",
            "create",
            f"Create a {noun}",
            request=serializer,
            responses={201: created or serializer, **BAD_REQUEST, **ERRORS},
        ),
    )
    detail = extend_schema_view(
        **operation(
            "get", "retrieve", f"One {noun}", responses={200: serializer, **NOT_FOUND, **ERRORS}
        ),
        **operation(
            "patch",
            "partial_update",
            f"Change a {noun} (fields left out stay; retire it with {retire})",
            request=serializer,
            responses={200: serializer, **BAD_REQUEST, **NOT_FOUND, **ERRORS},
        ),
        **operation(
            "delete",
            "destroy",
            f"Delete a {noun} nothing refers to",
            responses={204: None, **NOT_FOUND, **DELETE_REFUSED, **ERRORS},
        ),
    )
    return listing, detail


class PlantViews:
    model = Plant
    serializer_class = s.PlantSerializer

    def get_queryset(self) -> QuerySet:
        return Plant.objects.prefetch_related("lines", "shifts")


plant_list_doc, plant_detail_doc = documented("plant", s.PlantSerializer)


@plant_list_doc
class PlantListView(PlantViews, ListView):
    pass


@plant_detail_doc
class PlantDetailView(PlantViews, DetailView):
    pass


class LineViews:
    model = Line
    serializer_class = s.LineSerializer

    def get_queryset(self) -> QuerySet:
        return Line.objects.select_related("plant").prefetch_related("stations")


line_list_doc, line_detail_doc = documented("line", s.LineSerializer)


@line_list_doc
class LineListView(LineViews, ListView):
    pass


@line_detail_doc
class LineDetailView(LineViews, DetailView):
    pass


class StationViews:
    model = Station
    serializer_class = s.StationSerializer

    def get_queryset(self) -> QuerySet:
        return Station.objects.select_related("line__plant")


station_list_doc, station_detail_doc = documented(
    "station", s.StationSerializer, created=s.StationCreatedSerializer, retire="active: false"
)


@station_list_doc
class StationListView(StationViews, ListView):
    """Stations; a new one gets its device token, shown in the answer this once."""

    def post(self, request: Request, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        station, token = services.station_create(fields=dict(serializer.validated_data))
        station = self.get_queryset().get(pk=station.pk)
        station.token = token
        body = s.StationCreatedSerializer(station, context=self.get_serializer_context()).data
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers={"Location": body["url"], "Cache-Control": "no-store"},
        )


@station_detail_doc
class StationDetailView(StationViews, DetailView):
    pass


class StationTokenView(StationViews, MasterDataView):
    """Rotate (a new token, shown once; the old one stops at once) or revoke a device token."""

    serializer_class = s.StationTokenSerializer
    operation = "rotate"
    required_permissions = {"POST": "masterdata.change_station"}

    def post(self, request: Request, code: str) -> Response:
        station = self.get_object()
        token = None
        if self.operation == "rotate":
            token = services.station_token_rotate(station=station)
        else:
            services.station_token_revoke(station=station)
        body = {
            "station": station.code,
            "token": token,
            "token_prefix": station.token_prefix,
            "token_rotated_at": station.token_rotated_at,
        }
        return Response(s.StationTokenSerializer(body).data, headers={"Cache-Control": "no-store"})


@extend_schema_view(
    post=extend_schema(
        tags=[TAG],
        operation_id="stations_rotate_token",
        summary="Issue a new device token for a station (the old one is refused at once)",
        request=None,
        responses={200: s.StationTokenSerializer, **NOT_FOUND, **ERRORS},
    )
)
class StationTokenRotateView(StationTokenView):
    operation = "rotate"


@extend_schema_view(
    post=extend_schema(
        tags=[TAG],
        operation_id="stations_revoke_token",
        summary="Revoke a station's device token (its device is refused until a new one)",
        request=None,
        responses={200: s.StationTokenSerializer, **NOT_FOUND, **ERRORS},
    )
)
class StationTokenRevokeView(StationTokenView):
    operation = "revoke"


class ProductViews:
    model = Product
    key = "sku"
    serializer_class = s.ProductSerializer

    def get_queryset(self) -> QuerySet:
        return Product.objects.prefetch_related("lines")


product_list_doc, product_detail_doc = documented("product", s.ProductSerializer)


@product_list_doc
class ProductListView(ProductViews, ListView):
    pass


@product_detail_doc
class ProductDetailView(ProductViews, DetailView):
    pass


class DefectTypeViews:
    model = DefectType
    serializer_class = s.DefectTypeSerializer


defect_list_doc, defect_detail_doc = documented("defect type", s.DefectTypeSerializer)


@defect_list_doc
class DefectTypeListView(DefectTypeViews, ListView):
    pass


@defect_detail_doc
class DefectTypeDetailView(DefectTypeViews, DetailView):
    pass


class ShiftViews:
    """A plant's shift calendar, in local wall-clock time; shifts are named within it."""

    model = Shift
    key = "name"
    serializer_class = s.ShiftSerializer

    def plant(self) -> Plant:
        code = self.kwargs["code"]
        plant = Plant.objects.filter(code=code).first()
        if plant is None:
            raise NotFound(f"There is no plant with code '{code}'.")
        return plant

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no plant
            return Shift.objects.none()
        return Shift.objects.filter(plant=self.plant()).select_related("plant")

    def new_object(self) -> Shift:
        return Shift(plant=self.plant())


shift_list_doc, shift_detail_doc = documented("plant shift", s.ShiftSerializer, retire="a DELETE")


@shift_list_doc
class ShiftListView(ShiftViews, ListView):
    pass


@shift_detail_doc
class ShiftDetailView(ShiftViews, DetailView):
    pass
