package runtime

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"onnxopt/internal/suite"
)

// A suiteCase is a conformance case, "folder/name", and how it must end:
// passing, unless one of the other fields says otherwise.
type suiteCase struct {
	path string
	// skip, when set, is why the case is not run.
	skip string
	// fail, when set, is why the case does not pass: it runs, and passing
	// is an error, so that the table cannot go stale.
	fail string
	// family, when set, are the ops the case is meant to check: the case
	// is skipped while the runtime lacks an op outside them (a function
	// body made of another family's ops, say).
	family []opDef
}

// checkSuiteCases runs each case with RunCase (rtol 1e-3, atol 1e-7) and
// checks that the table lists every case matching one of patterns
// ("folder/prefix"), so that a case added to the suite is not left out.
func checkSuiteCases(t *testing.T, patterns []string, cases []suiteCase) {
	t.Helper()
	root := suite.Dir(t)
	var listed []string
	for _, c := range cases {
		listed = append(listed, c.path)
	}
	for _, p := range patterns {
		matches, err := filepath.Glob(filepath.Join(root, p+"*", "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		if len(matches) == 0 {
			t.Errorf("no suite case matches %s", p)
		}
		for _, m := range matches {
			rel, _ := filepath.Rel(root, filepath.Dir(m))
			if !slices.Contains(listed, filepath.ToSlash(rel)) {
				t.Errorf("suite case %s is not in the table", rel)
			}
		}
	}
	runSuiteCases(t, root, cases)
}

// checkOpCases runs every node case of the given ops (test_<op> followed
// by nothing, "_" or a digit) with RunCase (rtol 1e-3, atol 1e-7): each
// must pass, except those in known, which must not, for the reason given.
// A known case that is not in the suite is an error.
func checkOpCases(t *testing.T, ops []string, known map[string]string) {
	t.Helper()
	root := suite.Dir(t)
	var cases []suiteCase
	seen := map[string]bool{}
	for _, dir := range suite.Cases(t, "node") {
		name := filepath.Base(dir)
		if slices.ContainsFunc(ops, func(op string) bool { return matchesOp(name, op) }) {
			seen[name] = true
			cases = append(cases, suiteCase{path: "node/" + name, fail: known[name]})
		}
	}
	for name := range known {
		if !seen[name] {
			t.Errorf("listed case %s is not in the suite", name)
		}
	}
	runSuiteCases(t, root, cases)
}

// matchesOp reports whether a case name is test_<op> followed by nothing,
// "_" or a digit.
func matchesOp(name, op string) bool {
	rest, ok := strings.CutPrefix(name, "test_"+op)
	return ok && (rest == "" || rest[0] == '_' || rest[0] >= '0' && rest[0] <= '9')
}

// runSuiteCases runs each case under root in a subtest of its path and
// checks it ends as the table says.
func runSuiteCases(t *testing.T, root string, cases []suiteCase) {
	t.Helper()
	passed := 0
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			if c.skip != "" {
				t.Skip(c.skip)
			}
			res := RunCase(filepath.Join(root, filepath.FromSlash(c.path)))
			switch {
			case res.Status == StatusPass && c.fail != "":
				t.Errorf("passes but is listed as expected to fail (%s)", c.fail)
			case res.Status == StatusPass:
				passed++
			case c.fail != "":
				t.Logf("expected failure (%s): %s: %s", c.fail, res.Status, res.Err)
			case res.Status == StatusUnsupported && c.family != nil && !slices.ContainsFunc(c.family, func(d opDef) bool { return d.opType == res.Op }):
				t.Skipf("needs %s from another op family: %s", res.Op, res.Err)
			default:
				t.Fatalf("%s (ops %s): %s", res.Status, strings.Join(res.Ops, " "), res.Err)
			}
		})
	}
	t.Logf("%d of %d cases pass", passed, len(cases))
}
