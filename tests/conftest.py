import os

import torch

# Small CPU runs: one thread is faster and steadier on this shared 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
