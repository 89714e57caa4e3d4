"""The proxy's keys and identities, composed over the gateway database.

Why it exists: the resolver (provider keys per attempt), the authenticator (gateway keys) and
the admin routes share one database, one change watch and one redactor; this object builds
them from the settings, opens the database (migrating it) and refuses to start when the
key-encryption keys cannot open the stored keys. Without a database it is the master key and
the environment keys alone.
"""

from __future__ import annotations

from core.config import ConfigError
from core.redact import Redactor
from database import Database, DatabaseError, KeyRecords, Sealer
from proxy.admin import AdminRoutes, ASGIApp, KeyAdmin
from proxy.auth import Authenticator
from proxy.keys import ChangeWatch, KeyResolver
from proxy.settings import ProxySettings
from proxy.validation import base_urls

__all__ = ["KeyServices"]


class KeyServices:
    """Resolver, authenticator and admin routes over the settings' database (if any)."""

    def __init__(self, settings: ProxySettings, redactor: Redactor) -> None:
        self._settings = settings
        self._redactor = redactor
        self._database: Database | None = None
        self._admin: KeyAdmin | None = None
        self.records: KeyRecords | None = None
        self.resolver = KeyResolver(settings.env_keys, redactor=redactor)
        self.authenticator = Authenticator(settings.master_key, redactor=redactor)

    async def start(self) -> None:
        s = self._settings
        if not s.keys.database_url:
            return
        for kek in s.encryption_keys:
            self._redactor.add(kek)
        try:
            sealer = Sealer(s.encryption_keys) if s.encryption_keys else None
            database = Database(s.keys.database_url)
            await database.start()
        except DatabaseError as exc:
            raise ConfigError(f"gateway database: {exc}") from exc
        self._database = database
        try:
            records = KeyRecords(database, sealer)
            await records.check_sealer()
        except DatabaseError as exc:
            await database.stop()
            self._database = None
            raise ConfigError(f"{exc} (variable {s.keys.encryption_keys_env})") from exc
        self.records = records
        watch = ChangeWatch(records, refresh_s=s.keys.refresh_ms / 1000)
        self.resolver = KeyResolver(s.env_keys, records, watch=watch, redactor=self._redactor)
        self.authenticator = Authenticator(
            s.master_key, source=records, watch=watch, redactor=self._redactor
        )
        self._admin = KeyAdmin(
            records,
            self.authenticator,
            watch,
            bases=base_urls(s.routing),
            redactor=self._redactor,
        )

    @property
    def database(self) -> Database | None:
        """The opened gateway database (None without one, or before `start`)."""
        return self._database

    def mount(self, app: ASGIApp) -> ASGIApp:
        """`app` with the /gateway/v1 key routes in front, when there is a database."""
        return app if self._admin is None else AdminRoutes(app, self._admin)

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None
        if self._database is not None:
            await self._database.stop()
            self._database = None
