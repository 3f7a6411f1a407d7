"""Fixtures of the repository the tests run in: the bundled fixture model and images."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def model() -> str:
    return str(ROOT / "models" / "shapes-yolov8n.onnx")


@pytest.fixture(scope="session")
def int8_model() -> str:
    return str(ROOT / "models" / "shapes-yolov8n.int8.onnx")


@pytest.fixture(scope="session")
def val_images() -> list:
    return sorted((ROOT / "datasets" / "shapes" / "images" / "val").glob("*.jpg"))


@pytest.fixture(scope="session")
def det(model):
    import qdet

    return qdet.Detector(model)


@pytest.fixture(autouse=True)
def _installed_package():
    # The tests are of the installed wheel, not of python/qdet in the source tree.
    import qdet

    assert "site-packages" in qdet.__file__, qdet.__file__
    assert os.environ.get("QDET_BINARY") is None
