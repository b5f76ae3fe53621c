package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"onnxopt/report"
	"onnxopt/report/reporttest"
	"onnxopt/verify/verifytest"
)

// readReport checks the HTML report at path (reporttest.Check) and that
// its folder holds nothing but want: no temporary file left behind.
func readReport(t *testing.T, path string, want ...string) *html.Node {
	t.Helper()
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := reporttest.Check(page, report.Sections())
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if slices.Sort(want); !slices.Equal(names, want) {
		t.Errorf("the folder holds %q, want %q", names, want)
	}
	return doc
}

// captions maps each weight histogram's layer to its caption.
func captions(doc *html.Node) map[string]string {
	m := map[string]string{}
	for _, fc := range reporttest.All(reporttest.ByID(doc, report.SectionWeights), "figcaption") {
		text := reporttest.Text(fc)
		m[strings.Fields(text)[0]] = text
	}
	return m
}

// TestOptimizeReport cleans the digits CNN with --report: the page must
// list the passes the JSON report lists, in order, and show the weights
// of its four layers unchanged and every layer identical.
func TestOptimizeReport(t *testing.T) {
	dir := t.TempDir()
	out, page := filepath.Join(dir, "opt.onnx"), filepath.Join(dir, "report.html")
	code, stdout, stderr := onnxopt("optimize", digitsCNN, "-o", out, "--report", page, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r optimizeReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	doc := readReport(t, page, "opt.onnx", "report.html")

	if v := reporttest.All(reporttest.ByID(doc, report.SectionSummary), "p", "verdict", "pass"); len(v) != 1 {
		t.Errorf("%d passing verdicts in the summary, want 1", len(v))
	}
	var want, got []string
	for _, p := range r.Passes {
		want = append(want, p.Name)
	}
	want = append(want, "total")
	for _, tr := range reporttest.All(reporttest.ByID(doc, report.SectionPasses), "tr")[1:] {
		got = append(got, strings.Fields(reporttest.Text(tr))[0])
	}
	if !slices.Equal(got, want) {
		t.Errorf("pass table rows %q, want %q", got, want)
	}

	caps := captions(doc)
	for _, layer := range []string{"/c1/Conv", "/c2/Conv", "/c3/Conv", "/fc/Gemm"} {
		if !strings.HasSuffix(caps[layer], "; unchanged") {
			t.Errorf("caption of %s: %q, want the weights unchanged", layer, caps[layer])
		}
	}
	layers := reporttest.ByID(doc, report.SectionLayerError)
	rows := reporttest.All(layers, "tr")
	identical := reporttest.All(layers, "tr", "identical")
	if len(rows) != 11 || len(identical) != 10 || len(reporttest.All(layers, "img")) != 1 {
		t.Errorf("per-layer section: %d rows, %d identical, want a header and 10 identical values with a chart", len(rows), len(identical))
	}
}

// TestVerifyReport verifies the digits CNN against a copy with one weight
// of its second convolution 1% larger: the check fails, and the report
// must say so, point at that convolution's output as the first value
// outside the tolerance, and count the one weight changed.
func TestVerifyReport(t *testing.T) {
	dir := t.TempDir()
	changed, page := filepath.Join(dir, "changed.onnx"), filepath.Join(dir, "report.html")
	conv, err := verifytest.ScaleWeight(digitsCNN, changed, "onnx::Conv_41", 1.01)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := onnxopt("verify", digitsCNN, changed, "--test-data", digitsData, "--report", page)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (check failed): %s", code, stderr)
	}
	doc := readReport(t, page, "changed.onnx", "report.html")

	if v := reporttest.All(reporttest.ByID(doc, report.SectionSummary), "p", "verdict", "fail"); len(v) != 1 {
		t.Errorf("%d failing verdicts in the summary, want 1", len(v))
	}
	first := reporttest.All(reporttest.ByID(doc, report.SectionLayerError), "tr", "outside", "first")
	if len(first) != 1 || strings.Fields(reporttest.Text(first[0]))[0] != conv.Outputs[0].Name {
		t.Errorf("first value outside the tolerance: %d rows, want %s's", len(first), conv.Outputs[0].Name)
	}
	caps := captions(doc)
	for layer, caption := range caps {
		want := "; unchanged"
		if layer == conv.Name {
			want = "; 1 changed, by up to"
		}
		if !strings.Contains(caption, want) {
			t.Errorf("caption of %s: %q, want it to say %q", layer, caption, want)
		}
	}
	if len(caps) != 4 {
		t.Errorf("%d histograms, want 4", len(caps))
	}
	outputs := reporttest.All(reporttest.ByID(doc, report.SectionVerify), "tr", "outside")
	if len(outputs) != 1 || !strings.HasPrefix(reporttest.Text(outputs[0]), "logits") {
		t.Errorf("verification: %d outputs outside the tolerance, want logits", len(outputs))
	}
}

// TestVerifyExpectedReport checks one model against its expected outputs
// with --report: the page has one model's column and says that per-layer
// results need two models.
func TestVerifyExpectedReport(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	code, _, stderr := onnxopt("verify", digitsCNN, "--test-data", digitsData, "--atol", "1e-4", "--report", page)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	doc := readReport(t, page, "report.html")
	head := reporttest.All(reporttest.ByID(doc, report.SectionSummary), "thead")
	if len(head) != 1 || reporttest.Text(head[0]) != "model" {
		t.Errorf("summary columns %q, want the one model's", reporttest.Text(head[0]))
	}
	layers := reporttest.ByID(doc, report.SectionLayerError)
	if text := reporttest.Text(layers); len(reporttest.All(layers, "img")) != 0 || !strings.Contains(text, "need two models") {
		t.Errorf("per-layer section with one model: %q", text)
	}
}
