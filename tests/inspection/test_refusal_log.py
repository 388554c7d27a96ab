"""A refused frame (503, retried by the device) is a warning in the log, not an error;
the cause is logged once where it is found, and a 500 stays an error."""

from tests.images import RED, frame_bytes
from tests.inspection.test_api_frames import post_frame
from tests.inspection.test_storage_refusal import read_only_folder, warm  # noqa: F401
from tests.test_pages import console  # noqa: F401 - the fixture


def test_a_frame_the_storage_refused_is_a_warning_in_the_request_log(
    line_setup,
    read_only_folder,  # noqa: F811 - pytest passes the imported fixture
    api_client,
    console,  # noqa: F811
):
    response = post_frame(api_client, token=line_setup["token"], image=frame_bytes(RED))

    assert response.status_code == 503
    lines = console.getvalue().splitlines()
    request_lines = [line for line in lines if " django.request " in line]
    assert len(request_lines) == 1, lines
    assert " WARNING django.request Service Unavailable: /api/v1/inspections/" in request_lines[0]
    # The cause, once, for whoever must free the space.
    assert any(" ERROR " in line and "storage would not take it" in line for line in lines)
