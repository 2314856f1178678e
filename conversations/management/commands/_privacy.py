"""Shared by ``customer_export`` and ``customer_erase``: naming the customer, the actor."""

from __future__ import annotations

import getpass

from django.core.management.base import CommandError

from conversations.errors import DomainError
from conversations.models import Customer
from conversations.privacy import LOOKUPS, customers_matching


def add_identifier_arguments(parser) -> None:
    parser.add_argument("identifier", help="The customer's id, external id (JWT sub or visitor id) or email.")
    parser.add_argument(
        "--by",
        choices=[lookup.replace("_", "-") for lookup in LOOKUPS],
        help="How to read the identifier, when it could be more than one (default: whichever matches).",
    )


def find_customers(identifier: str, by: str | None) -> list[Customer]:
    try:
        return customers_matching(identifier, by=by.replace("-", "_") if by else None)
    except DomainError as error:
        raise CommandError(error.detail) from None


def describe(customer: Customer) -> str:
    scope = (
        f"authentication setting “{customer.authentication_setting.name}”"
        if customer.authentication_setting_id
        else f"visitor of widget “{customer.widget.widget_key}”"
    )
    return f"customer #{customer.pk} ({scope})"


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    return f"manage.py:{user}"
