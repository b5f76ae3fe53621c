package verify

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"onnxopt/runtime"
	"onnxopt/runtime/ort"
)

// A Backend says where the candidate runs. The reference always runs in
// onnxopt's runtime.
type Backend string

const (
	// Ours runs the candidate in onnxopt's runtime.
	Ours Backend = "ours"
	// ORT runs the candidate in ONNX Runtime.
	ORT Backend = "ort"
	// Both runs the candidate in both runtimes and also compares the
	// two runs with each other.
	Both Backend = "both"
)

// ParseBackend checks a backend's name.
func ParseBackend(name string) (Backend, error) {
	switch b := Backend(name); b {
	case Ours, ORT, Both:
		return b, nil
	}
	return "", fmt.Errorf("unknown backend %q: want ours, ort or both", name)
}

func (b Backend) usesOurs() bool { return b == Ours || b == Both }
func (b Backend) usesORT() bool  { return b == ORT || b == Both }

// ORTAvailable returns nil when ONNX Runtime can run models here, else an
// error saying what is missing and how to get it: a binary built with cgo,
// and the shared library that scripts/install-ort.sh installs.
func ORTAvailable() error {
	var missing []string
	if !cgoEnabled {
		missing = append(missing, "this binary was built without cgo (rebuild with CGO_ENABLED=1 and a C compiler)")
	}
	if _, err := ort.LibraryPath(); err != nil {
		missing = append(missing, fmt.Sprintf("the shared library is not installed (%v); install it with scripts/install-ort.sh, or set ORT_LIB to libonnxruntime.so", err))
	}
	if len(missing) > 0 {
		return errors.New("ONNX Runtime is unavailable: " + strings.Join(missing, "; "))
	}
	return nil
}

// A target is one model run by one runtime, or the expected outputs of
// the cases.
type target struct {
	label string
	// outputs are the names of the values compared as outputs.
	outputs []string
	// fetch are extra values to return, for per-layer comparison; only
	// onnxopt's runtime can return them.
	fetch []string
	run   func(c *chunk, names []string) (map[string]*runtime.Tensor, error)
	close func()
}

// A chunk is the part of a case that one run computes: rows [lo, hi) of
// a batched case, or all of it.
type chunk struct {
	c      *Case
	lo, hi int
	inputs map[string]*runtime.Tensor
}

// oursTarget runs m in onnxopt's runtime.
func oursTarget(label string, m *Model) (*target, error) {
	plan, err := runtime.Compile(m.Graph.Graph)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	accepts := map[string]bool{}
	for _, v := range plan.Inputs() {
		accepts[v.Name] = true
	}
	return &target{
		label:   label,
		outputs: outputNames(m),
		run: func(c *chunk, names []string) (map[string]*runtime.Tensor, error) {
			feeds := make(map[string]*runtime.Tensor, len(c.inputs))
			for name, t := range c.inputs {
				if accepts[name] {
					feeds[name] = t
				}
			}
			outs, err := plan.Fetch(feeds, names)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", m.Name, c.c.Name, err)
			}
			return outs, nil
		},
		close: func() {},
	}, nil
}

// ortTarget runs m in ONNX Runtime on one thread.
func ortTarget(label string, m *Model) (*target, error) {
	var s *ort.Session
	var err error
	if m.Path != "" {
		s, err = ort.Open(m.Path, ort.Options{})
	} else {
		var b []byte
		if b, err = proto.Marshal(m.Graph.ToProto()); err == nil {
			s, err = ort.OpenBytes(b, ort.Options{})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	return &target{
		label:   label,
		outputs: outputNames(m),
		run: func(c *chunk, _ []string) (map[string]*runtime.Tensor, error) {
			feeds := map[string]*ort.Tensor{}
			for _, info := range s.Inputs() {
				t, ok := c.inputs[info.Name]
				if !ok {
					return nil, fmt.Errorf("%s: %s: input %q is not given", m.Name, c.c.Name, info.Name)
				}
				p, err := runtime.TensorToProto(info.Name, t)
				if err != nil {
					return nil, fmt.Errorf("%s: input %q: %w", m.Name, info.Name, err)
				}
				if feeds[info.Name], err = ort.FromProto(p); err != nil {
					return nil, fmt.Errorf("%s: input %q: %w", m.Name, info.Name, err)
				}
			}
			outs, err := s.Run(feeds)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", m.Name, c.c.Name, err)
			}
			got := make(map[string]*runtime.Tensor, len(outs))
			for name, t := range outs {
				p, err := t.Proto()
				if err != nil {
					return nil, fmt.Errorf("%s: output %q: %w", m.Name, name, err)
				}
				if got[name], err = runtime.TensorFromProto(p); err != nil {
					return nil, fmt.Errorf("%s: output %q: %w", m.Name, name, err)
				}
			}
			return got, nil
		},
		close: func() { s.Close() },
	}, nil
}

// expectedTarget returns the cases' expected outputs.
func expectedTarget(m *Model) *target {
	return &target{
		label:   "expected",
		outputs: outputNames(m),
		run: func(c *chunk, names []string) (map[string]*runtime.Tensor, error) {
			out := make(map[string]*runtime.Tensor, len(names))
			for _, name := range names {
				t, ok := c.c.Want[name]
				if !ok {
					return nil, fmt.Errorf("%s: no expected value of output %q", c.c.Name, name)
				}
				if c.c.Samples > 0 {
					var err error
					if t, err = t.Rows(c.lo, c.hi); err != nil {
						return nil, fmt.Errorf("%s: expected output %q: %w", c.c.Name, name, err)
					}
				}
				out[name] = t
			}
			return out, nil
		},
		close: func() {},
	}
}

func outputNames(m *Model) []string {
	names := make([]string, len(m.Graph.Graph.Outputs))
	for i, v := range m.Graph.Graph.Outputs {
		names[i] = v.Name
	}
	return names
}
