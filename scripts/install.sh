#!/usr/bin/env bash
# Creates .venv/ in the checkout (if needed) and installs the pinned tasknas stack into it.
#
# Pins and work-arounds (measured; see also the comments in requirements/constraints.txt):
#   * torch 2.14.1 + torchvision 0.29.1: timm needs torchvision, and this pair is the one that imports
#     together; pip finds both on local disk. Every pip call passes the constraints file with -c so no
#     torch-dependent package can swap torch for a multi-GB download.
#   * pip only (uv/poetry ignore the local torch files and would download GBs).
#   * mmcv 2.1.0 has no wheel on PyPI; mmdet 3.3.0 asserts mmcv<2.2.0. We build it from the sdist WITH
#     its compiled ops (MMCV_WITH_OPS=1, CPU only) once and keep the wheel in a cache folder keyed by the
#     torch/Python/mmcv versions (pip's own cache keys by sdist only). Against torch >= 2.14 the headers
#     need C++20, but mmcv 2.1.0's setup.py passes -std=c++17: we patch that in the unpacked sdist.
#     The build takes ~13-23 minutes on 2 cores; later installs take seconds.
#   * --no-build-isolation for mmcv: the build must see the venv's torch and setuptools < 82 (mmcv's
#     setup.py and mmengine's `mmdet::` config lookup both import pkg_resources, removed in 82).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
CONSTRAINTS=$ROOT/requirements/constraints.txt
TORCH_VERSION=2.14.1
MMCV_VERSION=2.1.0
PYTAG=$($PY -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
CACHE=${TASKNAS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tasknas/wheels}/mmcv-$MMCV_VERSION-torch-$TORCH_VERSION-$PYTAG-$(uname -m)

say() { printf '[install] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  $PY -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# pip, minus the machine-config noise about local index folders that do not hold a package.
pip_() { "${PIP[@]}" "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; return "${PIPESTATUS[0]}"; }

say "build tools (setuptools<82 keeps pkg_resources for mmcv and mmengine)"
pip_ install -q -c "$CONSTRAINTS" pip setuptools wheel ninja

say "torch $TORCH_VERSION + torchvision (local files, ~1 minute) and numpy"
pip_ install -q -c "$CONSTRAINTS" torch torchvision numpy

if ! ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
  say "no cached mmcv $MMCV_VERSION wheel in $CACHE"
  say "building mmcv $MMCV_VERSION with compiled ops from source: this takes ~15-25 minutes on 2 cores, once"
  pip_ install -q -c "$CONSTRAINTS" mmengine
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  pip_ download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$work"
  tar -xzf "$work"/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
  src=$work/mmcv-$MMCV_VERSION
  # torch >= 2.14 headers use C++20 features; mmcv 2.1.0 hard-codes -std=c++17.
  sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
  mkdir -p "$work/wheel"
  (cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
      "${PIP[@]}" wheel -v --no-build-isolation --no-deps -c "$CONSTRAINTS" . -w "$work/wheel" \
      > "$work/build.log" 2>&1) || { tail -n 60 "$work/build.log"; say "mmcv build failed"; exit 1; }
  # The debug symbols make the wheel 32 MB; stripped it is ~1.4 MB and works the same.
  (cd "$work/wheel" && mkdir x && cd x && "$VENV/bin/python" -m zipfile -e ../mmcv-*.whl . \
      && find . -name '_ext*.so' -exec strip --strip-debug {} + \
      && "$VENV/bin/python" -m wheel pack . -d .. >/dev/null 2>&1 || true)
  mkdir -p "$CACHE"
  whl=$(ls -t "$work"/wheel/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
  cp "$whl" "$CACHE/.partial.whl" && mv "$CACHE/.partial.whl" "$CACHE/$(basename "$whl")"
  say "cached $(basename "$whl") in $CACHE"
fi
say "mmcv $MMCV_VERSION from $CACHE"
pip_ install -q -c "$CONSTRAINTS" --no-deps --force-reinstall "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl

say "OpenMMLab stack, timm and tools"
pip_ install -q -c "$CONSTRAINTS" -r requirements/stack.txt
say "tasknas (editable)"
pip_ install -q -c "$CONSTRAINTS" --no-deps --no-build-isolation -e .

"$VENV/bin/python" - <<'PY'
import torch, torchvision, mmcv, mmcv.ops, mmengine, mmdet, mmdet.models, mmseg, mmseg.models, timm, tasknas  # noqa
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
mmcv.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
print(f"[install] ok: torch {torch.__version__}, mmcv {mmcv.__version__} (ops), mmdet {mmdet.__version__}, "
      f"mmseg {mmseg.__version__}, timm {timm.__version__}")
PY
