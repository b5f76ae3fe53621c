package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/passes"
)

// largeFile is the size from which reading or writing a model shows its
// progress: smaller files take well under a second.
const largeFile = 256 << 20

// progress is a progress bar on stderr, shown only when stderr is a
// terminal and CI is not set; otherwise every method does nothing but
// tell cli.observeProgress.
type progress struct {
	bar *progressbar.ProgressBar
	c   *cli
	// desc describes the work, or the stage of it running.
	desc string
	// stages describe the stages of work that counts each from 1
	// (passes.StagedProgressReporter); stage is the one running, -1
	// before the first.
	stages []string
	stage  int
	// bytes marks a file read or written, whose bar appears once the
	// total reaches largeFile.
	bytes bool
}

// newProgress starts a bar for total steps of work described by desc.
func (c *cli) newProgress(total int, desc string) *progress {
	return &progress{bar: c.progressBar(int64(total), desc, false), c: c, desc: desc, stage: -1}
}

// passProgress shows the progress a pass reports, if it does: each of the
// stages of a passes.StagedProgressReporter in turn, otherwise one
// described by desc.
func (c *cli) passProgress(pass passes.Pass, desc string) *progress {
	p := &progress{c: c, desc: desc, stage: -1}
	reporter, ok := pass.(passes.ProgressReporter)
	if !ok {
		return p
	}
	if staged, ok := pass.(passes.StagedProgressReporter); ok {
		p.stages = staged.ProgressStages()
		if len(p.stages) == 0 {
			return p // nothing to report with these options
		}
		p.desc = p.stages[0]
	}
	p.bar = c.progressBar(0, p.desc, false)
	reporter.SetProgress(p.Step)
	return p
}

// fileProgress is the progress of reading or writing the file at path,
// for onnx.ReadOptions and onnx.WriteOptions.
func (c *cli) fileProgress(verb, path string) *progress {
	return &progress{c: c, desc: verb + " " + filepath.Base(path), stage: -1, bytes: true}
}

// progressBar makes a bar for total steps or bytes on stderr, or returns
// nil when stderr is not a terminal or CI is set.
func (c *cli) progressBar(total int64, desc string, bytes bool) *progressbar.ProgressBar {
	f, ok := c.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || os.Getenv("CI") == "true" {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(io.Writer(f)),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionShowCount(),
		progressbar.OptionShowBytes(bytes),
	}
	return progressbar.NewOptions64(total, opts...)
}

// Step moves the bar to done steps of total, as passes.ProgressReporter
// and verify.Options.Progress report them. done = 1 starts the count
// over, with the next of the stages: the bar, full at the end of the
// last one, is made new.
func (p *progress) Step(done, total int) {
	if done == 1 {
		if p.stage+1 < len(p.stages) {
			p.stage++
			p.desc = p.stages[p.stage]
		}
		if p.bar != nil {
			p.bar.Reset()
			p.bar.ChangeMax(total)
			p.bar.Describe(p.desc)
		}
	}
	p.update(int64(done), int64(total))
}

// Bytes moves the bar to done bytes of total, as onnx.ReadOptions and
// onnx.WriteOptions report them; the bar appears once total reaches
// largeFile.
func (p *progress) Bytes(done, total int64) {
	if p.bar == nil && total >= largeFile {
		p.bar = p.c.progressBar(total, p.desc, true)
	}
	p.update(done, total)
}

func (p *progress) update(done, total int64) {
	if p.c.observeProgress != nil {
		p.c.observeProgress(p.desc, done, total)
	}
	if p.bar == nil {
		return
	}
	if p.bar.GetMax64() != total {
		p.bar.ChangeMax64(total)
	}
	p.bar.Set64(done)
}

// Finish clears the bar.
func (p *progress) Finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// loadModel reads the model at path, showing the progress of a large
// file, and checks that it is well formed.
func (c *cli) loadModel(path string) (*graph.Model, error) {
	p := c.fileProgress("read", path)
	m, err := graph.LoadWith(path, onnx.ReadOptions{Progress: p.Bytes})
	p.Finish()
	if err != nil {
		return nil, err
	}
	if err := m.Verify(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// writeModel writes m to path, showing the progress of a large model.
func (c *cli) writeModel(path string, m *onnx.ModelProto, opt onnx.WriteOptions) error {
	p := c.fileProgress("write", path)
	opt.Progress = p.Bytes
	err := onnx.WriteModel(path, m, opt)
	p.Finish()
	return err
}
