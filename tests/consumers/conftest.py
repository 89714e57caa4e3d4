"""Fixtures for consumer runtime tests: running services that are always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from consumers import ConsumerService, Handler, KafkaSettings

ServiceFactory = Callable[[KafkaSettings, Handler], Coroutine[Any, Any, ConsumerService]]


@pytest.fixture
async def start_service() -> AsyncIterator[ServiceFactory]:
    """Factory: `await start_service(settings, handler)` returns a started ConsumerService."""
    services: list[ConsumerService] = []

    async def start(settings: KafkaSettings, handler: Handler) -> ConsumerService:
        service = ConsumerService(settings, handler)
        await service.start()
        services.append(service)
        return service

    yield start
    for service in services:
        await service.stop()
