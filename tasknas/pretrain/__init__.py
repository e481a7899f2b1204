"""Supernet pre-training on classification (DetNAS step 1) and the ranking report (``tasknas pretrain | rank``).

Imports torch, torchvision, timm, scipy, numpy, mmengine's ``Config`` (config files) and tasknas.core; no
mmdet/mmseg. docs/pretrain.md describes the commands; the modules:

* :mod:`.config` — the checked config sections; :mod:`.data` — Fashion-MNIST, image folders, generated shapes;
* :mod:`.model` — the supernet + classifier and its transfer checkpoint; :mod:`.paths` — the step's paths
  (uniform, FLOPs-binned, FairNAS, GreedyNAS); :mod:`.trainer` — the training loop;
* :mod:`.ranking` — rank statistics; :mod:`.selection` — stratified archs; :mod:`.report` — the ranking report;
* :mod:`.cli` — the two commands.
"""
