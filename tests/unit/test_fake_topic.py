"""The in-memory topic passes the `Topic` contract, as `CoreTopic` on NATS does."""

from __future__ import annotations

import pytest

from tests.contract.topic_contract import TopicContract
from tests.fakes.topic import FakeTopic


class TestFakeTopic(TopicContract):
    @pytest.fixture
    def topic(self) -> FakeTopic:
        self.shared = FakeTopic()
        return self.shared

    @pytest.fixture
    def other(self, topic: FakeTopic) -> FakeTopic:
        return topic  # one subject, whoever holds it
