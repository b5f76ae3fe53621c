package onnx

import (
	"bytes"
	"io"
	"os"
)

// progressStep is how many bytes of reading or writing a model go by
// between two calls of a Progress callback: a 2 GB file makes 256 calls.
const progressStep = 8 << 20

// A progressReader reads through r at most progressStep bytes at a time
// and tells fn of the bytes read so far, total growing with them should
// the file have grown since its size was taken.
type progressReader struct {
	r           io.Reader
	done, total int64
	fn          func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if len(b) > progressStep {
		b = b[:progressStep]
	}
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.total = max(p.total, p.done)
		p.fn(p.done, p.total)
	}
	return n, err
}

// readFile reads the file at path as os.ReadFile does, telling progress,
// when not nil, how far it has got: first with 0 and the file's size, at
// the end with done == total.
func readFile(path string, progress func(done, total int64)) ([]byte, error) {
	if progress == nil {
		return os.ReadFile(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	var buf bytes.Buffer
	// bytes.Buffer reads while it has MinRead bytes free: with them
	// spare, a file of the size found is read without growing.
	buf.Grow(int(size) + bytes.MinRead)
	progress(0, size)
	r := &progressReader{r: f, total: size, fn: progress}
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	if r.done != r.total { // the file shrank
		progress(r.done, r.done)
	}
	return buf.Bytes(), nil
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
