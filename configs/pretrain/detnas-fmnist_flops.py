# As detnas-fmnist_uniform.py with SPOS FLOPs-binned sampling (uniform inside one of 7 FLOPs bins of the space).
_base_ = './detnas-fmnist_uniform.py'
sampler = dict(type='flops', num_bins=7)
