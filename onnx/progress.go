package onnx

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
)

// progressStep is how many bytes of reading or writing a model go by
// between two calls of a Progress callback: a 2 GB file makes 256 calls.
const progressStep = 8 << 20

// readFile reads the file at path, telling progress, when not nil, how
// far it has got: first with 0 and the file's size, at the end with done ==
// total. A large file is read in progressStep chunks by one goroutine per
// processor: copying a model of weights out of the page cache is most of
// the time of loading it, and the copies run in parallel.
func readFile(path string, progress func(done, total int64)) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	size := fi.Size()
	if size > math.MaxInt {
		return nil, fmt.Errorf("%s: %d bytes is too large to read", path, size)
	}
	if progress == nil {
		progress = func(done, total int64) {}
	}
	progress(0, size)
	buf := make([]byte, size)
	chunks := int((size + progressStep - 1) / progressStep)
	next := make(chan int, chunks)
	for c := range chunks {
		next <- c
	}
	close(next)
	type result struct {
		n   int
		err error
	}
	results := make(chan result)
	workers := min(chunks, runtime.GOMAXPROCS(0))
	for range workers {
		go func() {
			for c := range next {
				lo := int64(c) * progressStep
				hi := min(lo+progressStep, size)
				n, err := f.ReadAt(buf[lo:hi], lo)
				if err == io.EOF && int64(n) == hi-lo {
					err = nil
				}
				results <- result{n, err}
			}
		}()
	}
	var done int64
	var first error
	for range chunks {
		r := <-results
		if r.err != nil && first == nil {
			first = r.err
		}
		done += int64(r.n)
		if first == nil {
			progress(done, size)
		}
	}
	if first != nil {
		if first == io.EOF {
			return nil, fmt.Errorf("%s: the file shrank while it was read", path)
		}
		return nil, first
	}
	return buf, nil
}

// A progressWriter counts the bytes written through it, to one file and
// then another, and tells fn of them every progressStep bytes and when
// all total are written.
type progressWriter struct {
	w           io.Writer
	done, total int64
	next        int64 // done at which fn hears next
	fn          func(done, total int64)
}

func newProgressWriter(total int64, fn func(done, total int64)) *progressWriter {
	fn(0, total)
	return &progressWriter{total: total, next: progressStep, fn: fn}
}

// to makes p write to w.
func (p *progressWriter) to(w io.Writer) io.Writer {
	p.w = w
	return p
}

// Write writes b in pieces that end where fn is due to hear next, so
// that it hears of a large tensor as it goes, every progressStep bytes.
func (p *progressWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		piece := b[:min(int64(len(b)), p.next-p.done)]
		n, err := p.w.Write(piece)
		written += n
		p.done += int64(n)
		if n > 0 && (p.done == p.next || p.done == p.total) {
			p.fn(p.done, p.total)
			p.next = p.done + progressStep
		}
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}
