import torch

torch.set_num_threads(1)  # the test machine is shared; keep every test on one core
