"""A Keel project on disk: the contract, the documents and the data directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keel.contract import CONTRACT_FILE, Contract, load_contract
from keel.settings import Settings
from keel.store import Database, open_database, schema_for_data_dir

__all__ = ["Project"]

DOCS_DIR = "docs"
DATABASE_FILE = "keel.db"


@dataclass(frozen=True, kw_only=True)
class Project:
    """Paths of one project and its validated contract."""

    root: Path
    data_dir: Path
    contract: Contract
    database_url: str | None = None
    database_schema: str = "keel"

    @classmethod
    def open(cls, settings: Settings) -> Project:
        """Load the project named by ``settings`` (raises ``ContractError`` if invalid)."""
        root = settings.project.resolve()
        contract = load_contract(root / CONTRACT_FILE)
        url = settings.database_url.get_secret_value() if settings.database_url else None
        data_dir = settings.resolved_data_dir
        schema = settings.database_schema
        return cls(
            root=root,
            data_dir=data_dir,
            contract=contract,
            database_url=url or None,
            database_schema=schema_for_data_dir(data_dir) if schema == "auto" else schema,
        )

    def open_database(self, *, auto_migrate: bool = True) -> Database:
        """The project's database: PostgreSQL when the settings name one, else the SQLite file."""
        return open_database(
            path=self.database_path, url=self.database_url, schema=self.database_schema, auto_migrate=auto_migrate
        )

    @property
    def contract_path(self) -> Path:
        """The contract file."""
        return self.root / CONTRACT_FILE

    @property
    def docs_dir(self) -> Path:
        """The folder ``keel ingest`` reads."""
        return self.root / DOCS_DIR

    @property
    def database_path(self) -> Path:
        """The embedded SQLite database (metadata, keys, traces) when no PostgreSQL is set."""
        return self.data_dir / DATABASE_FILE

    @property
    def index_dir(self) -> Path:
        """Where index versions are written."""
        return self.data_dir / "index"

    @property
    def cache_dir(self) -> Path:
        """Where derived artefacts (the embedding model's ONNX graph) are cached."""
        return self.data_dir / "cache"

    def ensure_dirs(self) -> None:
        """Create the data directories if missing."""
        for path in (self.data_dir, self.index_dir, self.cache_dir):
            path.mkdir(parents=True, exist_ok=True)
