"""Who may use the registry API: users holding the registry's Django permissions.

Quality engineers hold them through their group; inspectors, viewers and
station device tokens do not, and get a 403 that names what is missing.
"""

from masterdata.api.permissions import DeclaredPermission


class RegistryPermission(DeclaredPermission):
    """Checks the permission a view declares per HTTP method in ``required_permissions``.

    Safe methods without an entry of their own use the ``GET`` one (or the only one).
    """

    message = "Only quality engineers may use the model registry API."
    who = "quality engineers"
