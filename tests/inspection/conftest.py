import pytest

from tests import factories
from tests.registry import ready_version


@pytest.fixture
def line_setup(db):
    """A plant with one line and station running the colour classifier.

    Red frames are 'ok' (pass), green 'missing_cap', blue 'crack', grey is
    unsure (review).
    """
    plant = factories.plant(code="PL1", time_zone="Europe/Paris")
    line = factories.line(code="L1", plant_obj=plant)
    station, token = factories.station_with_token(code="ST1", line_obj=line)
    version = ready_version(model_name="bottle")
    deployment = factories.deployment(
        station_obj=station, version=version, confidence_threshold=0.8
    )
    return {
        "plant": plant,
        "line": line,
        "station": station,
        "token": token,
        "version": version,
        "deployment": deployment,
    }


@pytest.fixture(params=["django", "lean"])
def frame_client(request):
    """A client for the frame API, once through Django's view (DRF's ``APIClient``) and once
    through the ASGI application, where a device's frame takes the lean route."""
    from rest_framework.test import APIClient

    from tests.inspection.lean_client import LeanFrameClient

    return APIClient() if request.param == "django" else LeanFrameClient()
