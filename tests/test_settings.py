"""Settings come from the environment only; unset means the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST"), "port": db.get("PORT"),
    "user": db.get("USER"), "redis": s.REDIS_URL,
    "channel_hosts": [h["address"] for h in s.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]],
    "cache": s.CACHES["default"]["LOCATION"], "broker": s.CELERY_BROKER_URL, "debug": s.DEBUG,
    "allowed_hosts": s.ALLOWED_HOSTS, "csrf_origins": s.CSRF_TRUSTED_ORIGINS, "email_backend": s.EMAIL_BACKEND,
    "db_options": db.get("OPTIONS", {}),
    "layer": s.CHANNEL_LAYERS["default"]["BACKEND"], "cache_backend": s.CACHES["default"]["BACKEND"],
}))
if s.REDIS_URL.startswith("unix://"):
    import redis
    print(json.dumps({"ping": redis.Redis.from_url(s.REDIS_URL).ping()}))
"""


def clean_env(tmp_path, **extra) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "DEBUG",
            "ALLOWED_HOSTS",
            "CSRF_TRUSTED_ORIGINS",
            "EMAIL_URL",
            "DATABASE_PREPARE_THRESHOLD",
            "OMNICHANNEL_STOCK_REALTIME",
        }
    }
    env.update(DJANGO_SETTINGS_MODULE="omnichannel.settings", OMNICHANNEL_VAR_DIR=str(tmp_path / "var"), **extra)
    return env


def settings_in(env) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_database_url_and_redis_url_are_parsed(tmp_path):
    env = clean_env(
        tmp_path,
        DATABASE_URL="postgres://chat:s3cret@db.internal:6543/omni",
        REDIS_URL="redis://cache.internal:6380/2",
        ALLOWED_HOSTS="chat.example.com,www.example.com",
        CSRF_TRUSTED_ORIGINS="https://chat.example.com",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.example.com:587",
    )
    (parsed,) = settings_in(env)
    assert parsed["engine"] == "django.db.backends.postgresql"
    assert (parsed["name"], parsed["host"], parsed["port"], parsed["user"]) == ("omni", "db.internal", 6543, "chat")
    assert parsed["redis"] == "redis://cache.internal:6380/2"
    assert parsed["channel_hosts"] == ["redis://cache.internal:6380/2"]
    assert parsed["cache"] == "redis://cache.internal:6380/2"
    assert parsed["broker"] == "redis://cache.internal:6380/2"
    assert parsed["allowed_hosts"] == ["chat.example.com", "www.example.com"]
    assert parsed["csrf_origins"] == ["https://chat.example.com"]
    assert parsed["email_backend"] == "django.core.mail.backends.smtp.EmailBackend"


@pytest.mark.parametrize(("threshold", "options"), [(None, (True, 5)), ("2", (True, 2)), ("0", (None, None))])
def test_postgresql_prepares_repeated_statements_unless_turned_off(tmp_path, threshold, options):
    extra = {"DATABASE_PREPARE_THRESHOLD": threshold} if threshold else {}
    env = clean_env(tmp_path, DATABASE_URL="postgres://chat@db.internal/omni", REDIS_URL="redis://r/0", **extra)
    (parsed,) = settings_in(env)
    db_options = parsed["db_options"]
    assert (db_options.get("server_side_binding"), db_options.get("prepare_threshold")) == options


def test_unset_environment_gives_sqlite_under_var_and_an_embedded_redis(tmp_path):
    parsed, ping = settings_in(clean_env(tmp_path))
    assert parsed["engine"] == "django.db.backends.sqlite3"
    assert Path(parsed["name"]).parent == tmp_path / "var"
    assert parsed["redis"].startswith("unix://")
    assert parsed["channel_hosts"] == [parsed["redis"]]
    assert parsed["broker"] == "redis+socket://" + parsed["redis"].removeprefix("unix://")
    assert parsed["debug"] is True
    assert ping == {"ping": True}


@pytest.mark.parametrize(
    ("stock", "layer", "cache"),
    [
        ("", "omnichannel.realtime.layers.PubSubChannelLayer", "omnichannel.realtime.cache.RedisCache"),
        ("1", "channels_redis.pubsub.RedisPubSubChannelLayer", "django.core.cache.backends.redis.RedisCache"),
    ],
)
def test_the_stock_real_time_stack_takes_the_libraries_own_layer_and_cache(tmp_path, stock, layer, cache):
    [parsed] = settings_in(
        clean_env(tmp_path, REDIS_URL="redis://cache.internal:6380/2", OMNICHANNEL_STOCK_REALTIME=stock)
    )
    assert (parsed["layer"], parsed["cache_backend"]) == (layer, cache)


def test_debug_off_without_a_secret_key_refuses_to_start(tmp_path):
    env = clean_env(tmp_path, DEBUG="0", REDIS_URL="redis://127.0.0.1:6379/0")
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_check_deploy_reports_nothing_with_production_settings(tmp_path):
    env = clean_env(
        tmp_path,
        DEBUG="0",
        SECRET_KEY="x7Hq2-very-long-and-random-secret-key-for-the-deploy-check-9aZ3kLmP0qRsTuV",
        ALLOWED_HOSTS="chat.example.com",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_malformed_boolean_is_refused_with_a_clear_error(tmp_path, value):
    env = clean_env(tmp_path, DEBUG=value)
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


PRODUCTION_HEADERS = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="chat.example.com")
# A page that needs neither the database nor collected static files.
plain = client.get("/api/nowhere/")
secure = client.get("/api/nowhere/", secure=True)
print(json.dumps({
    "redirect": [plain.status_code, plain.get("Location")],
    "status": secure.status_code,
    "headers": {k: secure.get(k) for k in (
        "Strict-Transport-Security", "Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
        "Referrer-Policy", "Cross-Origin-Opener-Policy")},
}))
"""


def test_production_answers_with_hsts_https_only_cookies_and_the_security_headers(tmp_path):
    env = clean_env(
        tmp_path,
        DEBUG="0",
        SECRET_KEY="x7Hq2-very-long-and-random-secret-key-for-the-deploy-check-9aZ3kLmP0qRsTuV",
        ALLOWED_HOSTS="chat.example.com",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_HEADERS], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["redirect"] == [301, "https://chat.example.com/api/nowhere/"]
    assert answer["status"] == 404
    headers = answer["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "connect-src 'self' wss://chat.example.com" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_hsts_can_be_tuned_or_turned_off_from_the_environment(tmp_path):
    env = clean_env(
        tmp_path,
        DEBUG="0",
        SECRET_KEY="x7Hq2-very-long-and-random-secret-key-for-the-deploy-check-9aZ3kLmP0qRsTuV",
        ALLOWED_HOSTS="chat.example.com",
        REDIS_URL="redis://127.0.0.1:6379/0",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="0",
    )
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_HEADERS], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["headers"]["Strict-Transport-Security"] == "max-age=3600"


def test_a_trusted_proxy_that_is_not_an_address_or_network_is_refused_with_a_clear_error(tmp_path):
    env = clean_env(tmp_path, TRUSTED_PROXIES="10.0.0.0/8,proxy.internal")
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "TRUSTED_PROXIES: 'proxy.internal' is not an IP address or network" in result.stderr


PRINT_STORAGE = """
import json, django
django.setup()
from django.core.files.storage import storages
s = storages["default"]
print(json.dumps({"class": type(s).__module__ + "." + type(s).__name__, "bucket": getattr(s, "bucket_name", None),
    "endpoint": getattr(s, "endpoint_url", None), "acl": getattr(s, "default_acl", None),
    "location": str(getattr(s, "location", ""))}))
"""


def storage_in(env) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PRINT_STORAGE], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_attachments_are_stored_on_the_file_system_under_media_root_by_default(tmp_path):
    storage = storage_in(clean_env(tmp_path))
    assert storage["class"] == "django.core.files.storage.filesystem.FileSystemStorage"
    assert storage["location"] == str(tmp_path / "var" / "media")


def test_attachment_storage_s3_puts_them_in_a_private_bucket(tmp_path):
    env = clean_env(
        tmp_path,
        ATTACHMENT_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME="omni-files",
        AWS_S3_ENDPOINT_URL="https://s3.example.com",
    )
    storage = storage_in(env)
    assert storage["class"] == "storages.backends.s3.S3Storage"
    assert (storage["bucket"], storage["endpoint"], storage["acl"]) == (
        "omni-files",
        "https://s3.example.com",
        "private",
    )


def test_an_unknown_attachment_storage_is_refused_with_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PRINT_STORAGE],
        env=clean_env(tmp_path, ATTACHMENT_STORAGE="ftp"),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "ATTACHMENT_STORAGE is filesystem or s3" in result.stderr
