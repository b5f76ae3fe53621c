//go:build unix

package onnx

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// mapFile maps the regular file at path into memory, private and writable:
// writes go to private copies of the pages and never reach the file, so
// callers may treat the bytes as any other slice. The mapping is never
// removed, because tensors loaded from it may live as long as the process.
func mapFile(path string) ([]byte, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size == 0 {
		return []byte{}, nil
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("%s: %d bytes is too large to map", path, size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return data, nil
}
