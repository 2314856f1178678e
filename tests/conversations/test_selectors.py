from __future__ import annotations

import pytest

from conversations import services
from conversations.selectors import message_page

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(persistent, customer):
    conversation = None
    for i in range(1, 11):
        conversation = services.customer_message_send(widget=persistent, customer=customer, body=f"m{i}").conversation
    return conversation  # seq 1 = m1, seq 2 = offline_persistent, seq 3.. = m2..m10 (11 messages)


def seqs(page):
    messages, has_more = page
    return [m.seq for m in messages], has_more


def test_latest_page_is_ascending_and_says_whether_older_exist(conversation):
    assert seqs(message_page(conversation.pk, limit=4)) == ([8, 9, 10, 11], True)
    assert seqs(message_page(conversation.pk, limit=50)) == (list(range(1, 12)), False)


def test_after_seq_returns_exactly_what_was_missed(conversation):
    assert seqs(message_page(conversation.pk, after_seq=7)) == ([8, 9, 10, 11], False)
    assert seqs(message_page(conversation.pk, after_seq=0, limit=3)) == ([1, 2, 3], True)
    assert seqs(message_page(conversation.pk, after_seq=11)) == ([], False)


def test_before_seq_returns_the_older_page(conversation):
    assert seqs(message_page(conversation.pk, before_seq=5, limit=2)) == ([3, 4], True)
    assert seqs(message_page(conversation.pk, before_seq=3)) == ([1, 2], False)


def test_limit_is_capped(conversation):
    assert len(message_page(conversation.pk, limit=10_000)[0]) == 11
    assert len(message_page(conversation.pk, limit=0)[0]) == 1
