#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that runtime/ort loads.
#
# The library comes from the onnxruntime-node npm package, which ships the
# prebuilt Linux x64 libonnxruntime.so. Its postinstall step would download
# a further binary (GPU providers) and fails without network access beyond
# the registry, so it is skipped with ONNXRUNTIME_NODE_INSTALL=skip; the CPU
# library inside the package is all runtime/ort needs.
#
# Usage: scripts/install-ort.sh
# The install folder is $ONNXOPT_ORT_DIR (default ~/.cache/onnxopt/ort).
# On success the library path is printed on stdout; set ORT_LIB to it to
# point runtime/ort at it explicitly (runtime/ort also finds it by default).
set -euo pipefail

version=1.30.0
dir=${ONNXOPT_ORT_DIR:-$HOME/.cache/onnxopt/ort}
lib=$dir/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*)
	echo "install-ort.sh: only linux/x86_64 is supported (got $(uname -s)/$(uname -m))" >&2
	exit 1
	;;
esac

installed_version() {
	sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
		"$dir/node_modules/onnxruntime-node/package.json" 2>/dev/null | head -n 1
}

if [[ -f $lib && $(installed_version) == "$version" ]]; then
	echo "$lib"
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "install-ort.sh: npm is required (apt-get install npm)" >&2
	exit 1
fi

mkdir -p "$dir"
ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$dir" --no-audit --no-fund \
	--no-save "onnxruntime-node@$version" >&2

if [[ ! -f $lib ]]; then
	echo "install-ort.sh: npm install finished but $lib is missing" >&2
	exit 1
fi
echo "$lib"
