"""Where an app's files live on the host: its data directory and its log."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config


@dataclass(frozen=True)
class AppFiles:
    """``<apps_dir>/<app id>/data`` (the app's /app/data, a local process's working
    directory) and ``<apps_dir>/<app id>/logs/app.log`` (a local process's output)."""

    root: Path

    @classmethod
    def of(cls, config: Config, app_id: str) -> AppFiles:
        apps_dir = config.containers.apps_dir
        if not apps_dir.is_absolute():
            apps_dir = config.runtime.data_dir / apps_dir
        # Absolute: Docker bind mounts and a child's working directory must not depend on
        # the cwd of whoever computes them.
        return cls(apps_dir.resolve() / app_id)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "logs" / "app.log"

    def create(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
