import torch

from service_fixtures import (  # noqa: F401 - fixtures
    encoder, encoder_server, encoder_settings, measuring_encoder, measuring_encoder_server, studies, synth_dir, upserts,
    upserts_measured,
)

torch.set_num_threads(1)  # the test machine is shared; keep model tests on one core
