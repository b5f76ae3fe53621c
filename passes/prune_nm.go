package passes

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"onnxopt/graph"
)

// pruneNM keeps the N weights of largest magnitude in every group of M
// consecutive input channels, the semi-structured pattern that sparse
// tensor cores run (2:4 on NVIDIA Ampere and later).
type pruneNM struct {
	pruneOptions
	NM string
}

func newPruneNM() Pass {
	return &pruneNM{NM: "2:4"}
}

func (p *pruneNM) Flags(fs *pflag.FlagSet) {
	p.flags(fs, false)
	fs.StringVar(&p.NM, "nm", p.NM, "N:M, the weights kept in each group of M consecutive input channels")
}

func (p *pruneNM) Run(m *graph.Model, env *Env) (Result, error) {
	n, groupSize, err := parseNM(p.NM)
	if err != nil {
		return Result{}, err
	}
	return runPrune(m, env, &p.pruneOptions, func(targets []*pruneTarget) ([][]bool, error) {
		keep := make([][]bool, len(targets))
		for i, t := range targets {
			keep[i] = nmMask(t.vals, t.w.Dims(), t.w.InAxis, n, groupSize)
		}
		return keep, nil
	})
}

// parseNM reads "N:M" with 0 < N < M.
func parseNM(s string) (n, m int, err error) {
	a, b, ok := strings.Cut(s, ":")
	n, errN := strconv.Atoi(strings.TrimSpace(a))
	m, errM := strconv.Atoi(strings.TrimSpace(b))
	if !ok || errN != nil || errM != nil || n < 1 || n >= m {
		return 0, 0, fmt.Errorf("--nm %q: want N:M with 0 < N < M, such as 2:4", s)
	}
	return n, m, nil
}

// nmMask keeps the n largest magnitudes of each run of m consecutive
// elements along axis of a tensor of shape dims, the other indices fixed;
// a last, shorter run keeps at most n as well. Ties keep the first.
func nmMask(vals []float64, dims []int64, axis, n, m int) []bool {
	keep := make([]bool, len(vals))
	inner := 1
	for _, d := range dims[axis+1:] {
		inner *= int(d)
	}
	length := int(dims[axis])
	outer := len(vals) / max(1, length*inner)
	idx := make([]int, 0, m)
	for o := range outer {
		for in := range inner {
			base := o*length*inner + in
			for start := 0; start < length; start += m {
				idx = idx[:0]
				for c := start; c < min(start+m, length); c++ {
					idx = append(idx, base+c*inner)
				}
				sort.SliceStable(idx, func(a, b int) bool { return math.Abs(vals[idx[a]]) > math.Abs(vals[idx[b]]) })
				for _, i := range idx[:min(n, len(idx))] {
					keep[i] = true
				}
			}
		}
	}
	return keep
}
