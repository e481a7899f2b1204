"""tasknas: task-specific neural architecture search (one-shot core + MMDetection/MMSegmentation/binary plugins)."""
from setuptools import find_packages, setup

setup(
    name="tasknas",
    version="0.1.0",
    description="Task-specific one-shot NAS: DetNAS backbones, NAS-FPN/BiFPN necks, segmentation and binary networks",
    packages=find_packages(include=["tasknas", "tasknas.*"]),
    python_requires=">=3.10",
    # The core needs only torch and numpy. torch is pinned by requirements/constraints.txt, never here:
    # an open torch requirement lets pip pull a multi-GB build.
    install_requires=["numpy"],
    extras_require={
        "mm": ["mmengine==0.10.7", "mmcv==2.1.0", "mmdet==3.3.0", "mmsegmentation==1.2.2", "ftfy", "regex",
               "pycocotools", "timm", "matplotlib", "onnx", "onnxruntime"],
        "dev": ["pytest", "ruff"],
    },
    entry_points={"console_scripts": ["tasknas=tasknas.cli:main"]},
)
