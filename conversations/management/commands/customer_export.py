"""``manage.py customer_export <id|external id|email>``: everything stored about a customer,
as JSON, for a privacy (access or portability) request."""

from __future__ import annotations

import json
import os

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from conversations.management.commands._privacy import actor, add_identifier_arguments, describe, find_customers
from conversations.privacy import customers_export


class Command(BaseCommand):
    help = (
        "Export a customer's data (the customer record and every conversation with its messages) as JSON. "
        "An external id or an email can match customers of several sites: all of them are exported."
    )

    def add_arguments(self, parser):
        add_identifier_arguments(parser)
        parser.add_argument(
            "-o",
            "--output",
            help="Write to this new file (readable by its owner only) instead of standard output.",
        )

    def handle(self, *args, identifier: str, by: str | None, output: str | None, **options):
        customers = find_customers(identifier, by)
        document = customers_export(customers=customers, actor=actor())
        text = json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2) + "\n"
        if output is None:
            self.stdout.write(text, ending="")
        else:
            try:
                fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise CommandError(f"{output} exists; choose a new file.") from None
            except OSError as error:
                raise CommandError(f"Cannot write {output}: {error.strerror}.") from None
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
        summary = ", ".join(describe(c) for c in customers)
        conversations = sum(len(c["conversations"]) for c in document["customers"])
        stream = self.stderr if output is None else self.stdout
        stream.write(f"Exported {summary}: {conversations} conversation(s)" + (f" to {output}." if output else "."))
