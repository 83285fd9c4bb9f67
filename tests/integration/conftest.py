import pytest
import torch

from service_fixtures import (  # noqa: F401 - fixtures
    encoder, encoder_server, encoder_settings, measuring_encoder, measuring_encoder_server, studies, synth_dir, upserts,
    upserts_measured,
)

torch.set_num_threads(1)  # the test machine is shared; keep model tests on one core


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules that start their own Triton in this process (a tiny model of their own) run before any test that
    uses the session's Triton: stopping a second in-process Triton (pytriton) leaves the first one's Python
    stubs "not healthy", so every later call of the session's encoder would fail with INTERNAL."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("own_triton") else 1)  # stable: order kept otherwise
