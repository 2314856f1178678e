from tests.conversations.conftest import *  # noqa: F403 - the shared cast (widgets, agents, customers)
