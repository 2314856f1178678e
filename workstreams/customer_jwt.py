"""Verification of customer JWTs against an authentication setting (docs/protocol.md).

The accepted algorithms are fixed here (RS256, ES256) and never taken from the token;
each key only verifies tokens of its own algorithm. ``exp`` and ``iat`` are required, and
``exp - iat`` may not exceed the setting's ``max_token_lifetime``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
from django.utils.translation import gettext_lazy as _

from workstreams.models import AuthenticationSetting, KeyAlgorithm

ALLOWED_ALGORITHMS = (KeyAlgorithm.RS256.value, KeyAlgorithm.ES256.value)
LEEWAY = timedelta(seconds=30)
MAX_TOKEN_LENGTH = 8192
TIME_CLAIMS = ("exp", "iat", "nbf")


class InvalidToken(Exception):
    code = "invalid_token"
    detail = _("The customer token is not valid.")

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "invalid token")
        self.reason = reason


def verify_customer_token(setting: AuthenticationSetting, token: str) -> dict[str, Any]:
    """Return the verified claims of ``token``, or raise :class:`InvalidToken`."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("missing or oversized token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc
    algorithm = header.get("alg")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise InvalidToken("algorithm not allowed")
    kid = header.get("kid")
    keys = [key for key in setting.keys.all() if key.algorithm == algorithm]
    if kid is not None:
        keys = [key for key in keys if key.kid == kid]
    if not keys:
        raise InvalidToken("no key for this token")

    options: dict[str, Any] = {"require": ["sub", "exp", "iat"]}
    if not setting.audience:
        options["verify_aud"] = False
    last_error: Exception | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key=key.public_key,
                algorithms=[key.algorithm],
                issuer=setting.issuer,
                audience=setting.audience or None,
                leeway=LEEWAY,
                options=options,
            )
        except jwt.InvalidSignatureError as exc:
            last_error = exc
            continue  # another key of the setting may have signed it
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > 255 or "\x00" in sub:
            raise InvalidToken("bad sub")
        for name in TIME_CLAIMS:
            # RFC 7519 NumericDate: a JSON number. PyJWT also reads "1767225600" (a string).
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidToken(f"{name} is not a number")
        # A token that lives longer than the site allows is refused even while it is valid: exp a
        # century ahead with iat 0 was a credential for life. (iat is required above.)
        if claims["exp"] - claims["iat"] > setting.max_token_lifetime.total_seconds():
            raise InvalidToken("lifetime beyond the setting's maximum")
        return claims
    raise InvalidToken("bad signature") from last_error
