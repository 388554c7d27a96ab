"""Who may call an endpoint: users holding the Django permission it declares per method.

Roles hold permissions through their groups (masterdata/migrations/0002_roles.py):
every role may read master data, Quality engineers may change it. Station
device tokens hold none and get a 403 that names what is missing.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission


class DeclaredPermission(BasePermission):
    """Checks the permission a view declares per HTTP method in ``required_permissions``.

    Safe methods without an entry of their own use the ``GET`` one (or the only one).
    """

    who = "quality engineers"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401, asking for a token
        required = view.required_permissions.get(request.method)
        if required is None and request.method in SAFE_METHODS:
            # HEAD and OPTIONS need what reading needs, or else the view's one permission.
            required = view.required_permissions.get("GET") or next(
                iter(view.required_permissions.values()), None
            )
        if required is None:
            # A method the view does not implement: let DRF answer 405.
            return request.method not in view._allowed_methods()
        if user.has_perm(required):
            return True
        self.message = (
            f"Only {self.who} may do this: it needs the permission '{required}', "
            f"which {user} does not have."
        )
        return False


class MasterDataPermission(DeclaredPermission):
    """Reading master data needs its view permission (every role), changing it more."""

    who = "people whose role holds it"
