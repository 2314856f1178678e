"""English and Danish: the Danish catalogue is complete and up to date, and used."""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import translation

from workstreams.models import Queue, Workstream

BASE_DIR = Path(__file__).resolve().parent.parent
PO = BASE_DIR / "locale" / "da" / "LC_MESSAGES" / "django.po"
CODE_DIRS = ("omnichannel", "workstreams", "agents", "conversations")
GETTEXT = {"_", "gettext", "gettext_lazy", "pgettext", "pgettext_lazy", "ngettext", "ngettext_lazy"}


def _unquote(block: str) -> str:
    return "".join(ast.literal_eval(part) for part in re.findall(r'"(?:[^"\\]|\\.)*"', block))


def catalogue(po: Path = PO) -> list[dict]:
    """Entries of a .po file: msgctxt, msgid, msgstr(s), flags (a small parser: no gettext needed)."""
    entries = []
    for chunk in po.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in chunk.splitlines() if not line.startswith("#~")]
        if not any(line.startswith("msgid") for line in lines):
            continue
        text = "\n".join(lines)
        fields = dict(re.findall(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d\])?) ((?:".*"\n?)+)', text, re.M))
        entries.append(
            {
                "msgctxt": _unquote(fields["msgctxt"]) if "msgctxt" in fields else None,
                "msgid": _unquote(fields["msgid"]),
                "plural": _unquote(fields["msgid_plural"]) if "msgid_plural" in fields else None,
                "msgstrs": [_unquote(v) for k, v in fields.items() if k.startswith("msgstr")],
                "fuzzy": "#, fuzzy" in text or ", fuzzy" in text,
            }
        )
    return [e for e in entries if e["msgid"]]  # skip the header


def test_every_danish_entry_is_translated_and_not_fuzzy():
    entries = catalogue()
    assert len(entries) > 200
    missing = [e["msgid"] for e in entries if e["fuzzy"] or not all(e["msgstrs"])]
    assert not missing, missing


def test_every_translatable_string_of_the_code_is_in_the_catalogue():
    known = {(e["msgctxt"], e["msgid"]) for e in catalogue()}
    missing = []
    for directory in CODE_DIRS:
        for path in (BASE_DIR / directory).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in GETTEXT and node.args):
                    continue
                args = node.args
                context = None
                if node.func.id.startswith("pgettext"):
                    if not isinstance(args[0], ast.Constant):
                        continue
                    context, args = args[0].value, args[1:]
                if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                    if (context, args[0].value) not in known:
                        missing.append(f"{path.relative_to(BASE_DIR)}: {args[0].value!r}")
    assert not missing, "run makemessages -l da and translate:\n" + "\n".join(missing)


def test_the_compiled_catalogue_is_the_po_file():
    """Django reads the .mo, not the .po: after editing the .po, run compilemessages and commit it."""
    compiled = gettext.GNUTranslations(PO.with_suffix(".mo").open("rb"))._catalog
    expected = {}
    for entry in catalogue():
        key = entry["msgid"] if entry["msgctxt"] is None else f"{entry['msgctxt']}\x04{entry['msgid']}"
        if entry["plural"] is None:
            expected[key] = entry["msgstrs"][0]
        else:
            expected.update({(key, n): text for n, text in enumerate(entry["msgstrs"])})
    compiled = {key: text for key, text in compiled.items() if key != ""}  # the header
    assert compiled == expected, "locale/da/LC_MESSAGES/django.mo is stale: run compilemessages"


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext (apt-get install gettext)")
def test_makemessages_finds_no_string_the_catalogue_lacks(tmp_path, settings):
    """The code scan above reads Python only; makemessages also reads the templates."""
    for name in (*CODE_DIRS, "templates", "locale"):
        shutil.copytree(BASE_DIR / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BASE_DIR / "manage.py", tmp_path)
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "OMNICHANNEL_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "da", "-v0"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=120,
    )
    known = {(e["msgctxt"], e["msgid"]) for e in catalogue()}
    found = {(e["msgctxt"], e["msgid"]) for e in catalogue(tmp_path / PO.relative_to(BASE_DIR))}
    assert not sorted(found - known, key=str), "run makemessages -l da, translate, compilemessages"


def test_admin_labels_are_danish_in_danish():
    with translation.override("da"):
        assert str(Workstream._meta.verbose_name) == "arbejdsstrøm"
        assert str(Workstream._meta.get_field("persistent").verbose_name) == "gør chats vedvarende"
        assert str(Queue._meta.verbose_name_plural) == "køer"
    with translation.override("en"):
        assert str(Workstream._meta.verbose_name) == "workstream"


@pytest.mark.django_db
def test_the_admin_speaks_danish_to_a_danish_browser(client, superuser):
    client.force_login(superuser)
    response = client.get(reverse("admin:workstreams_workstream_changelist"), HTTP_ACCEPT_LANGUAGE="da")
    content = response.content.decode()
    assert "arbejdsstrømme" in content.lower()
    assert "Konfiguration" in content or "konfiguration" in content.lower()
