"""Login throttling (django-axes, settings AXES_*): five wrong passwords for one username from
one address lock that pair out for a while, on the inbox's login and on the admin's."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt

from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"
LOGINS = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def alice(db):
    user = UserFactory(username="alice", is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client, path: str, password: str, username: str = "alice", **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def fail(client, path: str, times: int, **extra) -> None:
    for _ in range(times):
        response = sign_in(client, path, "wrong", **extra)
        assert response.status_code == 200  # the form again, with its error


def lock_out(client, path: str = "/accounts/login/") -> None:
    fail(client, path, 4)
    assert sign_in(client, path, "wrong").status_code == 429


@pytest.mark.parametrize("path", LOGINS)
def test_after_five_failures_the_username_is_locked_out_with_a_clear_429(client, alice, path, settings):
    fail(client, path, 4)
    response = sign_in(client, path, "wrong")
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    html = response.content.decode()
    assert "Too many failed sign-ins" in html
    assert "blocked for 15 minutes" in html


@pytest.mark.parametrize("path", LOGINS)
def test_a_locked_out_user_cannot_sign_in_even_with_the_right_password(client, alice, path):
    lock_out(client, path)
    response = sign_in(client, path, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_per_username_and_address(client, alice, db):
    bob = UserFactory(username="bob")
    bob.set_password(PASSWORD)
    bob.save()
    lock_out(client)
    # Bob, from the same address, and Alice from another address can still sign in.
    assert sign_in(client, "/accounts/login/", PASSWORD, username="bob").status_code == 302
    client.logout()
    assert sign_in(client, "/accounts/login/", PASSWORD, REMOTE_ADDR="10.1.2.3").status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(client, alice):
    lock_out(client)
    response = sign_in(client, "/accounts/login/", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 429


def test_behind_a_trusted_proxy_the_lockout_is_per_client_it_forwards(client, alice, settings):
    """Every sign-in arrives from the proxy's address: counted by it, one client's wrong
    passwords locked everyone out. The address is the one the proxy forwards (omnichannel.addresses)."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    def via_proxy(forwarded_for: str, password: str) -> int:
        return sign_in(
            client, "/accounts/login/", password, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for
        ).status_code

    assert [via_proxy("203.0.113.9", "wrong") for _ in range(5)] == [200] * 4 + [429]
    # That client writing another address in front of the one the proxy appends: still locked out.
    assert via_proxy("198.51.100.1, 203.0.113.9", PASSWORD) == 429
    assert via_proxy("203.0.113.10", PASSWORD) == 302  # another client behind the same proxy


def test_a_successful_sign_in_resets_the_count(client, alice):
    fail(client, "/accounts/login/", 4)
    assert sign_in(client, "/accounts/login/", PASSWORD).status_code == 302
    client.logout()
    fail(client, "/accounts/login/", 4)
    assert sign_in(client, "/accounts/login/", PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, alice, time_machine):
    time_machine.move_to("2026-01-05 10:00:00+00:00", tick=False)
    lock_out(client)
    assert sign_in(client, "/accounts/login/", PASSWORD).status_code == 429
    time_machine.move_to("2026-01-05 10:16:00+00:00", tick=False)
    assert sign_in(client, "/accounts/login/", PASSWORD).status_code == 302


def test_the_limit_and_cool_off_come_from_settings(client, alice, settings):
    from datetime import timedelta

    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    fail(client, "/accounts/login/", 1)
    response = sign_in(client, "/accounts/login/", "wrong")
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert "blocked for 1 minute " in response.content.decode()


def test_the_lockout_page_is_danish_for_a_danish_user(client, alice):
    fail(client, "/accounts/login/", 4)
    response = sign_in(client, "/accounts/login/", "wrong", HTTP_ACCEPT_LANGUAGE="da")
    assert response.status_code == 429
    assert "For mange mislykkede log ind" in response.content.decode()


def test_failed_attempts_are_recorded_for_the_admin(client, alice):
    fail(client, "/accounts/login/", 2)
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.failures_since_start) == ("alice", 2)
