package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// libraryInInstallDir is where scripts/install-ort.sh leaves the library,
// relative to its install folder.
const libraryInInstallDir = "node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"

// LibraryPath returns the path of the ONNX Runtime shared library: the file
// named by the ORT_LIB environment variable if it is set, else the one
// installed by scripts/install-ort.sh under $ONNXOPT_ORT_DIR (by default
// $HOME/.cache/onnxopt/ort). It returns an error if that file does not exist.
func LibraryPath() (string, error) {
	if path := os.Getenv("ORT_LIB"); path != "" {
		if err := isFile(path); err != nil {
			return "", fmt.Errorf("ONNX Runtime library from ORT_LIB: %w", err)
		}
		return path, nil
	}
	dir := os.Getenv("ONNXOPT_ORT_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("ONNX Runtime library: ORT_LIB and ONNXOPT_ORT_DIR are unset and the home folder is unknown: %w", err)
		}
		dir = filepath.Join(home, ".cache", "onnxopt", "ort")
	}
	path := filepath.Join(dir, libraryInInstallDir)
	if err := isFile(path); err != nil {
		return "", fmt.Errorf("ONNX Runtime library not found (%w); run scripts/install-ort.sh or set ORT_LIB to libonnxruntime.so", err)
	}
	return path, nil
}

func isFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return errors.New(path + " is a folder, not the shared library")
	}
	return nil
}
