import torch

torch.set_num_threads(1)  # the test machine is shared; keep model tests on one core
