"""A small plant whose every report figure is worked out by hand in tests/reports/expected.py.

Plant P (Europe/Paris), shifts Early 06-14, Late 14-22, Night 22-06. Two
days, 28 and 29 March 2026: Paris moves its clocks from 02:00 to 03:00 in the
night between, so the night shift of the 28th (22:00 CET to 06:00 CEST) lasts
seven hours and crosses both midnight and the change. Line L1 (stations S1,
S1B) runs model cap v1; line L2 (station S2) runs cap v2. Two frames outside
the range (27th 23:30 and 30th 00:30 local) check the edges of the period.

    tag  local time        station ver verdict model   reason    decisions                    final
    f1   28 00:30 CET      S1   v1  pass    -       -         -                            -
    f2   28 07:00          S1   v1  fail    crack   defect    insp1 confirm                crack
    f3   28 15:00 (B)      S1   v1  fail    scratch defect    insp1 reject                 -
    f4   28 23:00          S1   v1  review  crack   low conf  insp2 correct scratch        scratch
    f5   29 01:30 CET      S1   v1  pass    -       sampled   insp1 confirm                -
    f6   29 03:30 CEST     S1   v1  pass    -       sampled   insp2 correct crack          crack
    f7   29 10:00 (none)   S1B  v1  fail    crack   defect    (pending)                    crack
    g1   28 09:00          S2   v2  pass    -       -         -                            -
    g2   28 09:30          S2   v2  fail    crack   defect    insp1 correct scratch,
                                                              insp2 confirm (supersedes)   crack
    g3   28 22:30          S2   v2  review  - (ok)  low conf  insp1 correct scratch        scratch
    g4   29 05:59 CEST     S2   v2  fail    scratch defect    insp2 correct crack          crack
    g5   29 16:00          S2   v2  review  scratch low conf  (pending)                    scratch
    g6   29 20:00          S2   v2  pass    -       -         -                            -
    x1   27 23:30          S1   v1  pass    (outside the range)
    x2   30 00:30 CEST     S2   v2  fail    crack   (outside the range; insp1 confirm)

Products: A on f1, f2, f4, f5, f6; B on f3 and every g; none on f7.
"""

import datetime as dt
import zoneinfo
from types import SimpleNamespace

import pytest

from inspection.models import Inspection, Verification
from inspection.services import verification_record
from tests import factories

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DAY1 = dt.date(2026, 3, 28)
DAY2 = dt.date(2026, 3, 29)
RANGE = {"from": "2026-03-28", "to": "2026-03-29"}


def paris(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    """A wall-clock time in Paris (zoneinfo picks CET or CEST)."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=PARIS)


def decide(frame, inspector, decision, *, at, defect_type=None, spent_ms=None, supersedes=None):
    """Record a decision through the real service, then date it at ``at``.

    The service stamps the current time; reports need decisions at known
    moments, so the test moves the record (and the frame's verified_at) there.
    """
    record = verification_record(
        inspection=frame,
        inspector=inspector,
        decision=decision,
        defect_type=defect_type,
        time_spent_ms=spent_ms,
        supersedes=supersedes,
    )
    Verification.objects.filter(pk=record.pk).update(created_at=at)
    Inspection.objects.filter(pk=frame.pk).update(verified_at=at)
    record.refresh_from_db()
    return record


@pytest.fixture
def known_plant(db):
    return build_known_plant()


def build_known_plant() -> SimpleNamespace:
    """The plant of this module's docstring, through the factories and the real services."""
    crack = factories.defect_type(code="crack", name="Crack", severity="critical")
    scratch = factories.defect_type(code="scratch", name="Scratch", severity="minor")
    plant = factories.plant(code="P", time_zone="Europe/Paris")
    factories.shift(plant_obj=plant, name="Early", start=dt.time(6), end=dt.time(14))
    factories.shift(plant_obj=plant, name="Late", start=dt.time(14), end=dt.time(22))
    factories.shift(plant_obj=plant, name="Night", start=dt.time(22), end=dt.time(6))
    line1 = factories.line(code="L1", plant_obj=plant)
    line2 = factories.line(code="L2", plant_obj=plant)
    s1 = factories.station(code="S1", line_obj=line1)
    s1b = factories.station(code="S1B", line_obj=line1)
    s2 = factories.station(code="S2", line_obj=line2)
    product_a = factories.product(sku="A", name="Yogurt 125 g", lines=[line1])
    product_b = factories.product(sku="B", name="Yogurt 500 g", lines=[line1, line2])
    labels = ("ok", "crack", "scratch")
    v1 = factories.version_row(model_name="cap", labels=labels)
    v2 = factories.version_row(model_name="cap", labels=labels)
    d1 = factories.deployment(station_obj=s1, version=v1)
    d1b = factories.deployment(station_obj=s1b, version=v1)
    d2 = factories.deployment(station_obj=s2, version=v2)
    insp1 = factories.inspector(username="insp1")
    insp2 = factories.inspector(username="insp2")

    def frame(deployment, when, verdict, label, product=None, reason="", status=None):
        return factories.inspection_row(
            deployment_obj=deployment,
            verdict=verdict,
            label=label,
            captured_at=when,
            product_obj=product,
            review_reason=reason,
            review_status=status,
            serial=f"SN-{when:%d%H%M}",
            lot="LOT-1",
        )

    f = SimpleNamespace()
    f.f1 = frame(d1, paris(28, 0, 30), "pass", "ok", product_a)
    f.f2 = frame(d1, paris(28, 7), "fail", "crack", product_a, "defect")
    f.f3 = frame(d1, paris(28, 15), "fail", "scratch", product_b, "defect")
    f.f4 = frame(d1, paris(28, 23), "review", "crack", product_a, "low_confidence")
    f.f5 = frame(d1, paris(29, 1, 30), "pass", "ok", product_a, "sampled_pass", "pending")
    f.f6 = frame(d1, paris(29, 3, 30), "pass", "ok", product_a, "sampled_pass", "pending")
    f.f7 = frame(d1b, paris(29, 10), "fail", "crack", None, "defect")
    f.g1 = frame(d2, paris(28, 9), "pass", "ok", product_b)
    f.g2 = frame(d2, paris(28, 9, 30), "fail", "crack", product_b, "defect")
    f.g3 = frame(d2, paris(28, 22, 30), "review", "ok", product_b, "low_confidence")
    f.g4 = frame(d2, paris(29, 5, 59), "fail", "scratch", product_b, "defect")
    f.g5 = frame(d2, paris(29, 16), "review", "scratch", product_b, "low_confidence")
    f.g6 = frame(d2, paris(29, 20), "pass", "ok", product_b)
    f.x1 = frame(d1, paris(27, 23, 30), "pass", "ok", product_a)
    f.x2 = frame(d2, paris(30, 0, 30), "fail", "crack", product_b, "defect")

    decide(f.f2, insp1, "confirm", at=paris(28, 9, 45), spent_ms=4000)
    decide(f.f3, insp1, "reject", at=paris(28, 15, 5), spent_ms=6000)
    decide(f.f4, insp2, "correct", defect_type=scratch, at=paris(28, 23, 30), spent_ms=3000)
    decide(f.f5, insp1, "confirm", at=paris(29, 1, 50), spent_ms=2000)
    decide(f.f6, insp2, "correct", defect_type=crack, at=paris(29, 6, 10), spent_ms=7000)
    first = decide(f.g2, insp1, "correct", defect_type=scratch, at=paris(28, 9, 40), spent_ms=8000)
    decide(f.g2, insp2, "confirm", at=paris(28, 10, 30), supersedes=first)
    decide(f.g3, insp1, "correct", defect_type=scratch, at=paris(28, 22, 40), spent_ms=5000)
    decide(f.g4, insp2, "correct", defect_type=crack, at=paris(29, 6, 29), spent_ms=2000)
    decide(f.x2, insp1, "confirm", at=paris(30, 1), spent_ms=1000)

    return SimpleNamespace(
        frames=f,
        plant=plant,
        lines=(line1, line2),
        stations=(s1, s1b, s2),
        products=(product_a, product_b),
        versions=(v1, v2),
        defect_types=(crack, scratch),
        inspectors=(insp1, insp2),
    )
