"""Certificates for the TLS tests (skipped where ``cryptography`` is missing)."""

from __future__ import annotations

import pytest

pytest.importorskip("cryptography")

from navigator.testing.pki import Pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A second, unrelated CA: its certificates are not trusted by ``pki``'s manager."""
    return Pki.create(tmp_path_factory.mktemp("other-pki"), name="rogue-ca")
