package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"onnxopt/runtime"
)

// conformanceReport is the JSON form of "onnxopt conformance".
type conformanceReport struct {
	Total       int               `json:"total"`
	Passed      int               `json:"passed"`
	Failed      int               `json:"failed"`
	Errors      int               `json:"errors"`
	Unsupported int               `json:"unsupported"`
	RTol        float64           `json:"rtol"`
	ATol        float64           `json:"atol"`
	Ops         []opCoverage      `json:"ops"`
	Cases       []conformanceCase `json:"cases"`
}

type conformanceCase struct {
	Name   string   `json:"name"`
	Dir    string   `json:"dir"`
	Status string   `json:"status"`
	Op     string   `json:"unsupported_op,omitempty"`
	MaxAbs *float64 `json:"max_abs_error,omitempty"`
	MaxRel *float64 `json:"max_rel_error,omitempty"`
	Error  string   `json:"error,omitempty"`
	Ops    []string `json:"ops"`
}

// opCoverage counts, for one op, the cases that use it and how they ended.
type opCoverage struct {
	Op          string `json:"op"`
	Cases       int    `json:"cases"`
	Passed      int    `json:"passed"`
	Unsupported bool   `json:"unsupported"` // the runtime lacks the op
}

func runConformance(c *cli, args []string) error {
	fs := c.flags("conformance")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	verbose := fs.BoolP("verbose", "v", false, "list every case that did not pass")
	if err := parse(fs, args, 1, -1); err != nil {
		return err
	}
	bar := c.newProgress(0, "conformance")
	results := runtime.RunSuite(fs.Args(), bar.Step)
	bar.Finish()
	if len(results) == 0 {
		return fmt.Errorf("no cases (folders holding model.onnx) under %s", strings.Join(fs.Args(), ", "))
	}
	r := conformanceSummary(results)
	if *asJSON {
		return c.printJSON(r)
	}
	printConformance(c, r, *verbose)
	return nil
}

func conformanceSummary(results []runtime.CaseResult) conformanceReport {
	r := conformanceReport{Total: len(results), RTol: runtime.ConformanceRTol, ATol: runtime.ConformanceATol}
	ops := map[string]*opCoverage{}
	for _, res := range results {
		cc := conformanceCase{Name: res.Name, Dir: res.Dir, Status: res.Status, Op: res.Op, Error: res.Err, Ops: res.Ops}
		if res.Status == runtime.StatusPass || res.Status == runtime.StatusFail {
			cc.MaxAbs, cc.MaxRel = finite(res.MaxAbsErr), finite(res.MaxRelErr)
		}
		if cc.Ops == nil {
			cc.Ops = []string{}
		}
		r.Cases = append(r.Cases, cc)
		switch res.Status {
		case runtime.StatusPass:
			r.Passed++
		case runtime.StatusFail:
			r.Failed++
		case runtime.StatusUnsupported:
			r.Unsupported++
		default:
			r.Errors++
		}
		for _, op := range res.Ops {
			o := ops[op]
			if o == nil {
				o = &opCoverage{Op: op}
				ops[op] = o
			}
			o.Cases++
			if res.Status == runtime.StatusPass {
				o.Passed++
			}
			if res.Status == runtime.StatusUnsupported && res.Op == op {
				o.Unsupported = true
			}
		}
	}
	for _, o := range ops {
		r.Ops = append(r.Ops, *o)
	}
	sort.Slice(r.Ops, func(i, j int) bool { return r.Ops[i].Op < r.Ops[j].Op })
	return r
}

// finite returns a pointer to x, or nil when x is not finite (JSON has no
// infinities).
func finite(x float64) *float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return nil
	}
	return &x
}

func printConformance(c *cli, r conformanceReport, verbose bool) {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "op\tcases\tpassed\t")
	for _, o := range r.Ops {
		note := ""
		if o.Unsupported {
			note = "unsupported"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", o.Op, o.Cases, o.Passed, note)
	}
	w.Flush()
	if verbose {
		fmt.Fprintln(c.stdout)
		for _, cc := range r.Cases {
			if cc.Status != runtime.StatusPass {
				fmt.Fprintf(c.stdout, "%-11s %s: %s\n", cc.Status, cc.Name, firstLine(cc.Error))
			}
		}
	}
	fmt.Fprintf(c.stdout, "\n%d cases: %d passed (%.1f%%), %d failed, %d errors, %d unsupported (rtol %g, atol %g)\n",
		r.Total, r.Passed, percent(int64(r.Passed), int64(r.Total)), r.Failed, r.Errors, r.Unsupported, r.RTol, r.ATol)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
