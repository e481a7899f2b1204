# As detnas-fmnist_uniform.py with FairNAS strict fairness: each step trains m = 4 paths that use every option of
# every block once, gradients accumulated, one optimizer step. 4 path passes per step, so a quarter of the
# epochs gives the uniform config's compute.
_base_ = './detnas-fmnist_uniform.py'
sampler = dict(type='fair')
train = dict(epochs=1)
