"""How the registry's endpoints appear in the OpenAPI schema.

A station device token is authenticated on these endpoints only to be refused
with 403, so their operations list user tokens and sessions, not it
(masterdata.api.schema holds the schema class every user-token endpoint uses).
"""

from masterdata.api.schema import UserTokenOnlySchema

__all__ = ["UserTokenOnlySchema"]
