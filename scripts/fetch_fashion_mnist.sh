#!/usr/bin/env bash
# Fashion-MNIST (MIT) for the binary plugin, without root: the Debian package dataset-fashion-mnist is
# downloaded with `apt-get download` and unpacked with `dpkg -x`; its four IDX files (.gz) are copied to
# ${XDG_CACHE_HOME:-~/.cache}/tasknas/data/fashion-mnist (or the folder given as $1), where the
# Fashion-MNIST config looks after the system folder /usr/share/datasets/fashion-mnist.
set -euo pipefail

SYSTEM_DIR=/usr/share/datasets/fashion-mnist
DEST=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/tasknas/data/fashion-mnist}
FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

have_all() {
    for f in $FILES; do [ -f "$1/$f" ] || return 1; done
}

if [ $# -eq 0 ] && have_all "$SYSTEM_DIR"; then
    echo "Fashion-MNIST is installed system-wide: $SYSTEM_DIR"
    exit 0
fi
if have_all "$DEST"; then
    echo "Fashion-MNIST IDX files are in $DEST"
    exit 0
fi
for tool in apt-get dpkg; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (Debian/Ubuntu needed)" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "downloading the Debian package dataset-fashion-mnist ..."
(cd "$WORK" && apt-get download dataset-fashion-mnist) || {
    echo "error: apt-get download dataset-fashion-mnist failed (run 'apt-get update' first?)" >&2; exit 1; }
dpkg -x "$WORK"/dataset-fashion-mnist_*.deb "$WORK/root"
mkdir -p "$DEST"
for f in $FILES; do
    cp "$WORK/root$SYSTEM_DIR/$f" "$DEST/$f.part"
    mv "$DEST/$f.part" "$DEST/$f"
done
echo "Fashion-MNIST IDX files are in $DEST"
