"""Load the demo into the database: a plant, its line and stations, users, the demo model.

Everything is created once and never overwritten: a second run finds what is
there, leaves alone what people changed since (passwords, mappings,
deployments, master data). The station tokens it issued are kept in
``LINESIGHT["DEMO_DIR"]`` and printed again while they still work, so a script
reading the demo's facts never cuts off the running simulated cameras; fresh
ones only when asked (``rotate_tokens``). The demo model is trained on first use and cached in
``LINESIGHT["DEMO_DIR"]``; it is registered through the same upload and
validation path as any user's model.
"""

import datetime as dt
import hashlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from rest_framework.authtoken.models import Token

from demo.frames import CLASSES
from masterdata import roles
from masterdata.choices import Severity
from masterdata.models import DefectType, Line, Plant, Product, Shift, Station
from masterdata.services import station_token_rotate
from masterdata.tokens import hash_station_token
from models_registry.choices import VersionStatus
from models_registry.models import Deployment, MLModel, ModelVersion
from models_registry.services import (
    deployment_activate,
    label_mappings_update,
    model_create,
    version_upload,
)

PLANT = {"code": "DEMO", "name": "Demo dairy", "time_zone": "Europe/Paris"}
SHIFTS = (("Early", dt.time(6), dt.time(14)), ("Late", dt.time(14), dt.time(22)))
SHIFTS += (("Night", dt.time(22), dt.time(6)),)
LINE = {"code": "L1", "name": "Filling line 1"}
STATIONS = (
    ("L1-S1", "Camera after the capper: cap and label of every bottle."),
    ("L1-S2", "Camera before the case packer: last check before shipping."),
)
PRODUCTS = (
    ("YOG-STR-330", "Strawberry drinking yogurt 330 ml", True),
    # Runs on another line; its labels are the 'wrong label' L1 must catch.
    ("YOG-BLU-330", "Blueberry drinking yogurt 330 ml", False),
)
DEFECT_TYPES = (
    ("missing_cap", "Missing cap", Severity.CRITICAL, "The bottle left the capper open."),
    (
        "wrong_label",
        "Wrong label",
        Severity.CRITICAL,
        "Another flavour's label: the allergen list on the bottle is wrong.",
    ),
    ("no_label", "No label", Severity.MAJOR, "The labeller missed the bottle."),
)
USERS = (
    ("engineer", roles.QUALITY_ENGINEERS, True),
    ("inspector", roles.INSPECTORS, False),
    ("viewer", roles.VIEWERS, False),
)
MODEL_NAME = "yogurt-bottle"
MODEL_DESCRIPTION = (
    "Demo model: a small CNN trained on synthetic frames of strawberry-yogurt bottles "
    "(ok, missing cap, wrong label, no label)."
)
# Label → defect type code; None means 'no defect'.
LABEL_MAPPING = {label: (None if label == "ok" else label) for label in CLASSES}
DEPLOYMENT_SETTINGS = {"confidence_threshold": 0.8, "pass_review_rate": 0.02}
# What the simulated stations send: mostly good bottles, some of each defect.
FRAME_MIX = {"ok": 40, "missing_cap": 4, "wrong_label": 3, "no_label": 3}
FRAME_SEED = 4242
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # noqa: S105 (characters, not a password)


class DemoError(Exception):
    """The demo could not be loaded; the message says what to do."""


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    password: str | None  # None when someone changed it (or it was never ours)
    api_token: str | None = None


@dataclass(frozen=True)
class DemoStation:
    code: str
    line: str
    token: str


@dataclass
class DemoSeed:
    """What the seed left in the database, with the secrets a script needs."""

    plant: str
    users: list[DemoUser]
    stations: list[DemoStation]
    model: ModelVersion | None = None
    training: dict | None = None
    frames_dir: Path | None = None
    frames: int = 0
    created: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        model = None
        if self.model is not None:
            model = {
                "name": self.model.model.name,
                "version": self.model.number,
                "status": self.model.status,
                "labels": self.model.labels,
                "heldout_accuracy": (self.training or {}).get("accuracy"),
            }
        return {
            "plant": self.plant,
            "users": [
                {
                    "username": u.username,
                    "role": u.role,
                    "password": u.password,
                    "api_token": u.api_token,
                }
                for u in self.users
            ],
            "stations": [{"code": s.code, "line": s.line, "token": s.token} for s in self.stations],
            "model": model,
            "frames": (
                {"dir": str(self.frames_dir), "count": self.frames} if self.frames_dir else None
            ),
            "created": self.created,
        }


def _generate_password() -> str:
    groups = ("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4)) for _ in range(3))
    return "-".join(groups)


def _read_credentials(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DemoError(f"{path} is not readable JSON ({exc}); delete it to start over.") from exc
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_credentials(path: Path, credentials: dict[str, str]) -> None:
    """Demo secrets (passwords, station tokens), readable by the owner only, for later runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(credentials, handle, indent=2)
    partial.replace(path)


@transaction.atomic
def seed_master_data(created: list[str]) -> tuple[Plant, list[Station]]:
    """The demo plant, its calendar, line L1 with two stations, products and defect types."""
    plant, new = Plant.objects.get_or_create(
        code=PLANT["code"], defaults={"name": PLANT["name"], "time_zone": PLANT["time_zone"]}
    )
    if new:
        created.append(f"plant {plant.code}")
        Shift.objects.bulk_create(
            Shift(plant=plant, name=name, start=start, end=end) for name, start, end in SHIFTS
        )
    line, new = Line.objects.get_or_create(
        code=LINE["code"], defaults={"name": LINE["name"], "plant": plant}
    )
    if new:
        created.append(f"line {line.code}")
    stations = []
    for code, description in STATIONS:
        station, new = Station.objects.get_or_create(
            code=code, defaults={"line": line, "description": description}
        )
        if new:
            created.append(f"station {code}")
        stations.append(station)
    for sku, name, on_line in PRODUCTS:
        product, new = Product.objects.get_or_create(sku=sku, defaults={"name": name})
        if new:
            created.append(f"product {sku}")
            if on_line:
                product.lines.add(line)
    for code, name, severity, description in DEFECT_TYPES:
        _, new = DefectType.objects.get_or_create(
            code=code, defaults={"name": name, "severity": severity, "description": description}
        )
        if new:
            created.append(f"defect type {code}")
    return plant, stations


def seed_users(credentials_path: Path, created: list[str]) -> list[DemoUser]:
    """The demo users with a password each; a password changed since is kept and not shown."""
    credentials = _read_credentials(credentials_path)
    users = []
    with transaction.atomic():
        for username, role, is_staff in USERS:
            user = User.objects.filter(username=username).first()
            password = credentials.get(username)
            if user is None:
                password = password or _generate_password()
                user = User.objects.create_user(username, password=password, is_staff=is_staff)
                user.groups.add(Group.objects.get(name=role))
                credentials[username] = password
                created.append(f"user {username}")
            elif password is None or not user.check_password(password):
                password = None
            token = Token.objects.get_or_create(user=user)[0].key if is_staff else None
            users.append(DemoUser(username, role, password, token))
        # Written inside the transaction: if this fails no user is left without a password.
        _write_credentials(credentials_path, credentials)
    return users


def seed_station_tokens(
    stations: list[Station], tokens_path: Path, *, rotate: bool, created: list[str]
) -> list[DemoStation]:
    """Each demo station's device token: the one issued before while it still works.

    A new token only when asked, or when the station has none that seed_demo
    knows (first run, or rotated in admin since): the simulators of a running
    demo hold the previous token and would be refused from then on.
    """
    tokens = _read_credentials(tokens_path)
    result = []
    with transaction.atomic():
        for station in stations:
            token = tokens.get(station.code)
            if rotate or not token or hash_station_token(token) != station.token_hash:
                token = station_token_rotate(station=station)
                tokens[station.code] = token
                created.append(f"device token of {station.code}")
            result.append(DemoStation(station.code, station.line.code, token))
        # Inside the transaction: a token is never issued without being kept.
        _write_credentials(tokens_path, tokens)
    return result


def demo_artifact(*, demo_dir: Path, log: Callable[[str], None]) -> tuple[Path, dict | None]:
    """The cached demo model zip, trained first if there is none; and its training figures."""
    model_dir = demo_dir / "model"
    zip_path = model_dir / "yogurt-bottle.zip"
    figures_path = model_dir / "training.json"
    if not zip_path.exists():
        from demo.training import train_demo_model

        log("Training the demo model on generated frames (about a minute, once)...")
        result = train_demo_model(model_dir)
        log(f"Trained: {result.summary()}.")
        figures = {
            "accuracy": round(result.accuracy, 4),
            "holdout_frames": result.holdout_frames,
            "train_frames": result.train_frames,
            "epochs": result.epochs,
            "generation_seconds": round(result.generation_seconds, 1),
            "training_seconds": round(result.training_seconds, 1),
            "total_seconds": round(result.total_seconds, 1),
        }
        figures_path.write_text(json.dumps(figures, indent=2))
    try:
        figures = json.loads(figures_path.read_text())
    except (OSError, ValueError):
        figures = None
    return zip_path, figures


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def seed_model(
    *,
    artifact: Path,
    engineer: User | None,
    stations: list[Station],
    created: list[str],
    log: Callable[[str], None],
) -> ModelVersion:
    """Register, validate, map and deploy the demo model, each step only if not done yet.

    A station that has ever had a deployment is left as it is: an engineer
    may have deployed another model there.
    """
    from models_registry.validation import validate_version_now

    model = MLModel.objects.filter(name=MODEL_NAME).first()
    if model is None:
        model = model_create(name=MODEL_NAME, description=MODEL_DESCRIPTION)
        created.append(f"model {model.name}")
    version = model.versions.filter(sha256=_sha256(artifact)).order_by("-number").first()
    if version is None:
        with artifact.open("rb") as handle:
            version = version_upload(
                model=model,
                artifact=File(handle, name=artifact.name),
                notes="Trained from scratch on the demo's synthetic frames by seed_demo.",
                uploaded_by=engineer,
                jpeg_draft=True,  # trained on frames decoded the fast way (demo.training)
            )
        created.append(f"model version {version}")
    if version.status != VersionStatus.READY:
        log(f"Validating {version} in the sandbox...")
        version = validate_version_now(version.pk)
        if version.status != VersionStatus.READY:
            raise DemoError(
                f"The demo model {version} did not validate: {version.status_reason} "
                "Delete the cached model in the demo folder to train it again."
            )
    # Validation maps 'ok' and labels named like defect codes itself; map what
    # it left, never what an engineer mapped since.
    unmapped = {
        row.label: LABEL_MAPPING[row.label]
        for row in version.mappings.all()
        if not row.is_mapped and row.label in LABEL_MAPPING
    }
    if unmapped:
        label_mappings_update(version=version, mapping=unmapped)
    for station in stations:
        if not Deployment.objects.filter(station=station).exists():
            deployment_activate(
                station=station, version=version, by=engineer, **DEPLOYMENT_SETTINGS
            )
            created.append(f"deployment of {version} to {station.code}")
    return version


def seed_demo(
    *,
    model_zip: Path | None = None,
    with_model: bool = True,
    frames_dir: Path | None = None,
    rotate_tokens: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> DemoSeed:
    """Load the demo (idempotent) and return what a person or a script needs to use it.

    ``model_zip`` registers that artifact instead of the cached, trained one.
    ``frames_dir`` also writes the frames the simulated stations post.
    ``rotate_tokens`` issues new station tokens; the previous ones stop working.
    """
    if with_model and model_zip is not None and not Path(model_zip).is_file():
        raise DemoError(f"No model artifact at {model_zip}.")
    demo_dir = Path(settings.LINESIGHT["DEMO_DIR"])
    created: list[str] = []
    plant, stations = seed_master_data(created)
    users = seed_users(demo_dir / "credentials.json", created)
    engineer = User.objects.filter(username=USERS[0][0]).first()

    seed = DemoSeed(plant=plant.code, users=users, stations=[], created=created)
    if with_model:
        figures = None
        if model_zip is None:
            model_zip, figures = demo_artifact(demo_dir=demo_dir, log=log)
        try:
            seed.model = seed_model(
                artifact=Path(model_zip),
                engineer=engineer,
                stations=stations,
                created=created,
                log=log,
            )
        except ValidationError as exc:
            raise DemoError("; ".join(exc.messages)) from exc
        seed.training = figures
    if frames_dir is not None:
        from demo.frames import write_frames

        seed.frames_dir = Path(frames_dir)
        seed.frames = len(write_frames(seed.frames_dir, FRAME_MIX, FRAME_SEED))
    # Last, so the tokens printed are the ones that work.
    seed.stations = seed_station_tokens(
        stations, demo_dir / "station_tokens.json", rotate=rotate_tokens, created=created
    )
    return seed
