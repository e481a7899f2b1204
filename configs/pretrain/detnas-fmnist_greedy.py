# As detnas-fmnist_uniform.py with GreedyNAS path filtering: 10 candidate paths per step scored on a held-out
# batch of 200 images, the 5 best trained (gradients accumulated), a pool of good paths sampled with a probability
# ramped from 0 to 0.8. About 5 path passes + 10 scoring passes per step: fewer epochs for the same compute.
_base_ = './detnas-fmnist_uniform.py'
sampler = dict(type='greedy', candidates=10, keep=5, pool_size=1000, pool_prob=[0.0, 0.8], greedy_images=1000,
               greedy_batch=200)
train = dict(epochs=1)
