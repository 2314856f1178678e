"""Customer JWTs are verified against the widget's authentication setting."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.factories import AuthenticationKeyFactory, AuthenticationSettingFactory
from tests.keys import ec_key, public_pem, rsa_key
from workstreams.customer_jwt import InvalidToken, verify_customer_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting():
    setting = AuthenticationSettingFactory(key=None, issuer="https://shop.example.com", audience="omnichannel")
    AuthenticationKeyFactory(setting=setting, kid="rsa-1", public_key=public_pem(rsa_key()))
    AuthenticationKeyFactory(setting=setting, kid="ec-1", public_key=public_pem(ec_key()))
    return setting


def claims(**overrides):
    now = datetime.now(UTC)
    base = {
        "sub": "customer-42",
        "iss": "https://shop.example.com",
        "aud": "omnichannel",
        "iat": now,
        "exp": now + timedelta(minutes=10),
        "name": "Ada",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload, key=None, algorithm="RS256", kid="rsa-1"):
    headers = {"kid": kid} if kid else {}
    return jwt.encode(payload, key or rsa_key(), algorithm=algorithm, headers=headers)


def test_a_token_signed_by_the_site_key_verifies(setting):
    assert verify_customer_token(setting, sign(claims()))["sub"] == "customer-42"


def test_es256_tokens_verify_with_the_ec_key(setting):
    token = sign(claims(), key=ec_key(), algorithm="ES256", kid="ec-1")
    assert verify_customer_token(setting, token)["name"] == "Ada"


def test_a_token_without_kid_is_tried_against_every_key_of_its_algorithm(setting):
    assert verify_customer_token(setting, sign(claims(), kid=None))["sub"] == "customer-42"


def test_a_token_signed_by_another_key_is_refused(setting):
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(claims(), key=rsa_key("other")))


def ago(**delta):
    """An instant relative to when the test runs (not to when it was collected: a long suite
    would otherwise turn "valid in 5 minutes" into "valid now")."""
    return lambda: datetime.now(UTC) - timedelta(**delta)


def ahead(**delta):
    return lambda: datetime.now(UTC) + timedelta(**delta)


def at_run_time(overrides: dict) -> dict:
    return claims(**{name: value() if callable(value) else value for name, value in overrides.items()})


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": ago(minutes=5)},
        {"nbf": ahead(minutes=5)},
        {"iss": "https://evil.example.com"},
        {"aud": "someone-else"},
        {"sub": None},
        {"sub": ""},
        {"exp": None},
        {"iat": None},
    ],
    ids=["expired", "not-yet-valid", "wrong-issuer", "wrong-audience", "no-sub", "empty-sub", "no-exp", "no-iat"],
)
def test_bad_claims_are_refused(setting, overrides):
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(at_run_time(overrides)))


def test_unknown_kid_is_refused(setting):
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(claims(), kid="rotated-away"))


def test_alg_none_is_refused(setting):
    token = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, token)


def test_hs256_signed_with_the_public_key_as_secret_is_refused(setting):
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    import hashlib
    import hmac

    payload = {k: (int(v.timestamp()) if isinstance(v, datetime) else v) for k, v in claims().items()}
    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
        + "."
        + b64(json.dumps(payload).encode())
    )
    secret = public_pem(rsa_key()).encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, signing_input + "." + b64(signature))


def test_tampered_payload_is_refused(setting):
    header, _payload, signature = sign(claims()).split(".")
    payload = {k: (int(v.timestamp()) if isinstance(v, datetime) else v) for k, v in claims(sub="admin").items()}
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 10_000])
def test_malformed_and_oversized_tokens_are_refused(setting, token):
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, token)


def test_a_token_for_another_setting_is_refused(setting):
    other = AuthenticationSettingFactory(key=None, issuer="https://other.example.com")
    AuthenticationKeyFactory(setting=other, kid="rsa-1", public_key=public_pem(rsa_key("other")))
    token = jwt.encode(
        claims(iss="https://other.example.com"), rsa_key("other"), algorithm="RS256", headers={"kid": "rsa-1"}
    )
    assert verify_customer_token(other, token)
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, token)


def test_audience_is_not_checked_when_the_setting_names_none():
    setting = AuthenticationSettingFactory(issuer="https://shop.example.com", audience="")
    assert verify_customer_token(setting, sign(claims(aud="anything"), kid=None))


def test_the_kid_selects_the_key_among_several_of_one_algorithm():
    setting = AuthenticationSettingFactory(key=None, issuer="https://shop.example.com", audience="omnichannel")
    AuthenticationKeyFactory(setting=setting, kid="2025", public_key=public_pem(rsa_key("old")))
    AuthenticationKeyFactory(setting=setting, kid="2026", public_key=public_pem(rsa_key("new")))
    assert verify_customer_token(setting, sign(claims(), key=rsa_key("new"), kid="2026"))["sub"] == "customer-42"
    assert verify_customer_token(setting, sign(claims(), key=rsa_key("old"), kid="2025"))["sub"] == "customer-42"
    # Signed by a key of the setting, but naming another key: only the named key is tried.
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(claims(), key=rsa_key("new"), kid="2025"))


def test_a_key_only_verifies_tokens_of_its_own_algorithm(setting):
    # The EC key's kid on an RS256 token: the EC key is never used as an RSA key, nor the reverse.
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(claims(), kid="ec-1"))


@pytest.mark.parametrize(
    "overrides",
    [{"exp": ago(seconds=10)}, {"nbf": ahead(seconds=10)}, {"iat": ahead(seconds=10)}],
    ids=["expired-10s-ago", "valid-in-10s", "issued-10s-ahead"],
)
def test_a_small_clock_difference_is_tolerated(setting, overrides):
    assert verify_customer_token(setting, sign(at_run_time(overrides)))["sub"] == "customer-42"


@pytest.mark.parametrize(
    "overrides",
    [{"exp": ago(minutes=2)}, {"nbf": ahead(minutes=2)}, {"iat": ahead(minutes=2)}],
    ids=["expired-2min-ago", "valid-in-2min", "issued-2min-ahead"],
)
def test_more_than_the_leeway_is_refused(setting, overrides):
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(at_run_time(overrides)))


def test_a_token_without_audience_is_refused_when_the_setting_names_one(setting):
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(claims(aud=None)))


@pytest.mark.parametrize("sub", ["a\x00b", " ", "x" * 256, 42], ids=["null", "blank", "too-long", "number"])
def test_a_sub_the_customer_cannot_be_stored_under_is_refused(setting, sub):
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(claims(sub=sub)))


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": lambda: str(int((datetime.now(UTC) + timedelta(minutes=10)).timestamp()))},
        {"iat": lambda: str(int(datetime.now(UTC).timestamp()))},
        {"nbf": lambda: str(int(datetime.now(UTC).timestamp()))},
        {"exp": True},
    ],
    ids=["exp-string", "iat-string", "nbf-string", "exp-boolean"],
)
def test_time_claims_that_are_not_numbers_are_refused(setting, overrides):
    """RFC 7519: exp, iat and nbf are JSON numbers; PyJWT alone would read a numeric string."""
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(at_run_time(overrides)))


def lifetime(seconds: float, *, issued: timedelta = timedelta(minutes=1)) -> dict:
    """Claims issued ``issued`` ago and expiring ``seconds`` after that."""
    iat = int((datetime.now(UTC) - issued).timestamp())
    return claims(iat=iat, exp=iat + seconds)


@pytest.mark.parametrize(
    "payload",
    [
        lambda: claims(iat=0, exp=int((datetime.now(UTC) + timedelta(days=36525)).timestamp())),
        lambda: lifetime(24 * 3600 + 1),
        lambda: lifetime(365 * 24 * 3600, issued=timedelta(days=200)),
    ],
    ids=["iat-0-exp-in-a-century", "a-second-over-24-hours", "a-year-issued-long-ago"],
)
def test_a_token_that_lives_longer_than_the_settings_maximum_is_refused(setting, payload):
    """The probe's token, exp 100 years ahead and iat 0, was accepted: a credential for life."""
    assert setting.max_token_lifetime == timedelta(hours=24)  # the default
    with pytest.raises(InvalidToken) as refused:
        verify_customer_token(setting, sign(payload()))
    assert refused.value.code == "invalid_token"


def test_a_token_of_exactly_the_maximum_lifetime_verifies(setting):
    assert verify_customer_token(setting, sign(lifetime(24 * 3600)))["sub"] == "customer-42"


def test_the_maximum_lifetime_is_the_settings_own(setting):
    setting.max_token_lifetime = timedelta(hours=1)
    setting.save()
    assert verify_customer_token(setting, sign(lifetime(3600)))["sub"] == "customer-42"
    with pytest.raises(InvalidToken):
        verify_customer_token(setting, sign(lifetime(3601)))


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (timedelta(minutes=1), True),
        (timedelta(days=30), True),
        (timedelta(seconds=59), False),
        (timedelta(days=30, seconds=1), False),
        (timedelta(0), False),
        (timedelta(hours=-1), False),
    ],
)
def test_the_maximum_lifetime_is_between_a_minute_and_30_days(setting, value, valid):
    from django.core.exceptions import ValidationError

    setting.max_token_lifetime = value
    if valid:
        setting.full_clean()
    else:
        with pytest.raises(ValidationError) as refused:
            setting.full_clean()
        assert list(refused.value.message_dict) == ["max_token_lifetime"]
