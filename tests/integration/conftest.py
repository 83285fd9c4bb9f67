import torch

from service_fixtures import encoder, encoder_server, encoder_settings, studies, synth_dir, upserts  # noqa: F401 - fixtures

torch.set_num_threads(1)  # the test machine is shared; keep model tests on one core
