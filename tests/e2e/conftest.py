"""Drive the real `paypos` console script in subprocesses, as a user or a third-party tool would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

_SCRIPT = Path(sys.executable).with_name("paypos")
COMMAND_TIMEOUT_S = 60


class PayposCli:
    """The installed `paypos` console script (else the same entry point through this interpreter)."""

    command: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "paypos.entrypoints.cli"]

    @staticmethod
    def env(**overrides: str) -> dict[str, str]:
        """This process's environment without any PAYPOS_* setting, plus ``overrides``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYPOS_")}
        env.update(overrides)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
            env=env if env is not None else self.env(),
        )

    def run_many(
        self, commands: Sequence[Sequence[str]], env: dict[str, str] | None = None
    ) -> list[subprocess.CompletedProcess[str]]:
        """Independent commands side by side (each one is mostly interpreter start-up)."""
        return list(self.run_batch({str(i): (c, env) for i, c in enumerate(commands)}).values())

    def run_batch(
        self, cases: Mapping[str, tuple[Sequence[str], dict[str, str] | None]]
    ) -> dict[str, subprocess.CompletedProcess[str]]:
        """Named, independent (args, env) runs side by side; results by name."""
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            futures = {name: pool.submit(self.run, *args, env=env) for name, (args, env) in cases.items()}
            return {name: future.result() for name, future in futures.items()}

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env if env is not None else self.env(),
        )


@pytest.fixture(scope="session")
def cli() -> PayposCli:
    return PayposCli()


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def sandbox_dir(cli: PayposCli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir after `paypos init --sandbox` (SQLite). Read-only: copy it to change it."""
    data_dir = tmp_path_factory.mktemp("sandbox") / "data"
    result = cli.run("init", "--sandbox", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "card visa-cvn18-approve" in " ".join(result.stderr.split()), result.stderr
    return data_dir


@pytest.fixture
def sandbox_copy(sandbox_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the initialised sandbox data dir, free to corrupt."""
    return Path(shutil.copytree(sandbox_dir, tmp_path / "data"))
