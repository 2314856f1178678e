"""``manage.py customer_erase <id|external id|email> --yes``: delete a customer with every
conversation and message, for a privacy (erasure) request. See docs/decisions.md."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from conversations.errors import ConversationsOngoing, DomainError
from conversations.management.commands._privacy import actor, add_identifier_arguments, describe, find_customers
from conversations.privacy import customer_erase, erasure_plan


class Command(BaseCommand):
    help = (
        "Erase a customer: delete the customer record and every conversation and message. Without --yes, "
        "only shows what would be erased. A customer with conversations that are not closed is refused "
        "unless --close-ongoing closes them first (as a supervisor's force-close)."
    )

    def add_arguments(self, parser):
        add_identifier_arguments(parser)
        parser.add_argument("--yes", action="store_true", help="Really erase (there is no undo).")
        parser.add_argument(
            "--close-ongoing",
            action="store_true",
            help="Force-close the customer's conversations that are not closed yet, then erase.",
        )

    def handle(self, *args, identifier: str, by: str | None, yes: bool, close_ongoing: bool, **options):
        customers = find_customers(identifier, by)
        plans = [erasure_plan(customer) for customer in customers]
        for plan in plans:
            line = f"{describe(plan.customer)}: {plan.conversations} conversation(s), {plan.messages} message(s)"
            if plan.ongoing:
                line += f"; not closed yet: {', '.join(f'#{pk}' for pk in plan.ongoing)}"
            self.stdout.write(line)
        blocked = [plan for plan in plans if plan.ongoing]
        if blocked and not close_ongoing:
            raise CommandError(
                "Nothing erased: the customer has conversations that are not closed yet. "
                "Close them in the inbox or the admin, or add --close-ongoing."
            )
        if not yes:
            raise CommandError("Nothing erased: add --yes to erase (there is no undo).")
        who = actor()
        for plan in plans:
            try:
                result = customer_erase(customer_id=plan.customer.pk, actor=who, close_ongoing=close_ongoing)
            except ConversationsOngoing:
                raise CommandError(
                    f"customer #{plan.customer.pk} started a conversation meanwhile; nothing of it was erased. "
                    "Run the command again."
                ) from None
            except DomainError as error:
                raise CommandError(f"customer #{plan.customer.pk}: {error.detail}") from None
            self.stdout.write(
                self.style.SUCCESS(
                    f"Erased customer #{result.customer_id}: {result.conversations} conversation(s), "
                    f"{result.messages} message(s)" + (f", {result.closed} closed first." if result.closed else ".")
                )
            )
