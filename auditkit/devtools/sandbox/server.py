"""`SandboxServer`: starts and stops the double, applies the source-side mutations and
dispatches each request to the MultiMail or Intercom routes."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from pathlib import Path

from auditkit.config import Settings
from auditkit.devtools.sandbox.base import Reply
from auditkit.devtools.sandbox.faults import FaultPlan
from auditkit.devtools.sandbox.handler import QuietThreadingServer, handler_class
from auditkit.devtools.sandbox.index import JsonlFile
from auditkit.devtools.sandbox.intercom import IntercomRoutes, intercom_kind
from auditkit.devtools.sandbox.multimail import HttpError, MultiMailRoutes, multimail_kind
from auditkit.devtools.sandbox.request_log import RequestLog
from auditkit.errors import ConfigError

# The logger name the sandbox has always logged under (shown by `-v`).
logger = logging.getLogger("auditkit.devtools.sandbox")


class SandboxServer(MultiMailRoutes, IntercomRoutes):
    """The MultiMail + Intercom double. Use as a context manager or call start()/stop().

    `base_url` serves both APIs; `faults` scripts failures; `requests` logs what was asked;
    `apply_mutations()` tampers with the audit log as `multimail/mutations.json` says.
    `more_accounts` (MultiMail API key → data folder) serves further accounts from the same
    address: a request is answered from the dataset its MultiMail key (or, for Intercom,
    its token) belongs to, as the real API tells accounts apart by key.
    Email lists: `date_after` is inclusive, `date_before` exclusive (both on received_at);
    `since_id` keeps ids greater than the one given.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        api_key: str = "mm_test_sandbox_key",
        intercom_token: str = "ic_test_sandbox_token",
        intercom_eu_token: str = "ic_test_sandbox_eu_token",
        latency_ms: float = 0,
        fail_rate: float = 0.0,
        seed: int = 42,
        host: str = "127.0.0.1",
        port: int = 0,
        intercom_rate_limit: int = 10_000,
        more_accounts: Mapping[str, Path] | None = None,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ConfigError(f"fail_rate must be between 0 and 1, got {fail_rate}")
        if latency_ms < 0:
            raise ConfigError(f"latency_ms must not be negative, got {latency_ms}")
        self.data_dir = Path(data_dir)
        self.api_key = api_key
        self.intercom_token = intercom_token
        self.intercom_eu_token = intercom_eu_token
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.host = host
        self.port = port
        self.intercom_rate_limit = intercom_rate_limit
        self.faults = FaultPlan()
        self.requests = RequestLog()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: QuietThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self._files: list[JsonlFile] = []
        self._intercom_window = (0, 0)  # (window start epoch s, calls used)
        self.mutations_applied = 0
        # Datasets of the other accounts, by MultiMail key: loaded, never listening.
        self.accounts: dict[str, SandboxServer] = {}
        for key, folder in (more_accounts or {}).items():
            if key == api_key or key in self.accounts:
                raise ConfigError("each sandbox account needs an API key of its own")
            self.accounts[key] = SandboxServer(
                folder,
                api_key=key,
                intercom_token=f"{intercom_token}_{len(self.accounts) + 2}",
                intercom_eu_token=f"{intercom_eu_token}_{len(self.accounts) + 2}",
                seed=seed,
                intercom_rate_limit=intercom_rate_limit,
            )

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server: (host, port)
        return f"http://{host}:{port}"

    def aim(self, settings: Settings, api_key: str | None = None) -> Settings:
        """`settings` pointed at this sandbox with its tokens: MultiMail, the default Intercom
        workspace and, when the config has one, the EU workspace served under /eu. With
        `api_key`, the tokens of the account that key belongs to (`more_accounts`)."""
        dataset = self._dataset(api_key)
        aimed = settings.with_overrides(
            multimail_api_url=self.base_url,
            multimail_api_key=dataset.api_key,
            intercom_api_url=self.base_url,
            intercom_access_token=dataset.intercom_token,
        )
        if aimed.intercom_workspace("eu") is not None:
            aimed = aimed.with_intercom_workspace(
                "eu", api_url=f"{self.base_url}/eu", access_token=dataset.intercom_eu_token
            )
        return aimed

    def _dataset(self, api_key: str | None) -> SandboxServer:
        """The dataset served for a MultiMail key (None: this server's own)."""
        if api_key is None or api_key == self.api_key:
            return self
        if api_key not in self.accounts:
            raise ConfigError("the sandbox serves no account with that API key")
        return self.accounts[api_key]

    def start(self) -> SandboxServer:
        if self._server is not None:
            return self
        self._load()
        for other in self.accounts.values():
            other._load()
        self._stopping.clear()
        try:
            self._server = QuietThreadingServer((self.host, self.port), handler_class(self))
        except OSError as exc:
            self._close_files()
            raise ConfigError(
                f"sandbox cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="auditkit-sandbox", daemon=True
        )
        self._thread.start()
        logger.info("sandbox serving %s on %s", self.data_dir, self.base_url)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a timeout fault or latency
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
        self._close_files()
        for other in self.accounts.values():
            other._close_files()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def apply_mutations(self, api_key: str | None = None) -> int:
        """Apply `multimail/mutations.json` (source-side tampering between two harvests) to
        this server's dataset, or to the account `api_key` names. Returns how many
        mutations were applied; applying twice changes nothing more."""
        if self._server is None:
            raise RuntimeError("apply_mutations() needs a running sandbox: call start() first")
        return self._dataset(api_key)._mutate()

    def _mutate(self) -> int:
        applied = 0
        with self._state_lock:
            for m in self.mutations.get("mutations", []):
                if m.get("collection") != "audit_log":
                    raise ConfigError(
                        f"mutations.json: unsupported collection {m.get('collection')!r}"
                    )
                entry_id = m["id"]
                if m["op"] == "delete":
                    self.audit_removed.add(entry_id)
                elif m["op"] == "set":
                    record = self.audit_overrides.get(entry_id) or self._audit_record_unlocked(
                        entry_id
                    )
                    if record is None:
                        raise ConfigError(f"mutations.json: audit entry {entry_id} does not exist")
                    target = record
                    *parents, leaf = m["path"]
                    for key in parents:
                        target = target.setdefault(key, {})
                    target[leaf] = m["value"]
                    self.audit_overrides[entry_id] = record
                else:
                    raise ConfigError(f"mutations.json: unsupported op {m['op']!r}")
                applied += 1
        self.mutations_applied += applied
        return applied

    # -- routing -----------------------------------------------------------------------------
    def _route(
        self, method: str, path: str, query: dict[str, str], auth: str | None
    ) -> tuple[str, Reply]:
        kind = intercom_kind(path)
        if kind is not None:
            for other in self.accounts.values():
                if auth in (f"Bearer {other.intercom_token}", f"Bearer {other.intercom_eu_token}"):
                    return kind, other._intercom(method, path, auth)
            return kind, self._intercom(method, path, auth)
        kind = multimail_kind(path)
        if kind == "unknown":
            return kind, Reply(404, {"error": "Not found"}, {})
        for key, other in self.accounts.items():
            if auth == f"Bearer {key}" and method == "GET":
                try:
                    return kind, Reply(200, other._multimail(kind, path, query), {})
                except HttpError as exc:
                    return kind, Reply(exc.status, {"error": exc.message}, {})
        if auth != f"Bearer {self.api_key}":
            return kind, Reply(
                401,
                {"error": "Invalid or missing API key"},
                {
                    "WWW-Authenticate": (
                        f'Bearer resource_metadata="{self.base_url}'
                        '/.well-known/oauth-protected-resource"'
                    )
                },
            )
        if method != "GET":
            return kind, Reply(
                405, {"error": f"{method} is not supported by the sandbox"}, {"Allow": "GET"}
            )
        try:
            return kind, Reply(200, self._multimail(kind, path, query), {})
        except HttpError as exc:
            return kind, Reply(exc.status, {"error": exc.message}, {})

    # -- HTTP ----------------------------------------------------------------------------------
    def _random_failure(self) -> str | None:
        if self.fail_rate <= 0:
            return None
        with self._rng_lock:
            if self._rng.random() >= self.fail_rate:
                return None
            return self._rng.choice(("429", "429", "500", "502", "503"))

    def _retry_after(self) -> str:
        with self._rng_lock:
            return self._rng.choice(("0", "1"))
