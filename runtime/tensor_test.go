package runtime

import (
	"strings"
	"testing"
)

func TestRows(t *testing.T) {
	x := mustTensor(t, []float32{0, 1, 2, 3, 4, 5, 6, 7}, 4, 2)
	got, err := x.Rows(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantData(t, "rows 1 to 3", got, f32T, []int{2, 2}, []float32{2, 3, 4, 5})
	// The rows share x's data, and appending to them cannot write over
	// the rows after.
	got.Data.([]float32)[0] = 20
	if x.Data.([]float32)[2] != 20 {
		t.Error("Rows copied the data")
	}
	if d := got.Data.([]float32); cap(d) != len(d) {
		t.Errorf("rows have capacity %d beyond their %d elements", cap(d), len(d))
	}
	if all, err := x.Rows(0, 4); err != nil || all != x {
		t.Errorf("all rows: %v, %v; want x itself", all, err)
	}
	for _, c := range []struct {
		t      *Tensor
		lo, hi int
		words  string
	}{
		{x, 3, 5, "rows 3 to 5"},
		{x, 2, 1, "rows 2 to 1"},
		{mustTensor(t, []float32{1}), 0, 1, "no axis 0"},
		{&Tensor{DType: f32T, Shape: []int{3, 2}, Data: []float32{1, 2}}, 0, 1, "does not fill"},
	} {
		if _, err := c.t.Rows(c.lo, c.hi); err == nil || !strings.Contains(err.Error(), c.words) {
			t.Errorf("Rows(%d, %d) of %s: error %v, want one containing %q", c.lo, c.hi, c.t, err, c.words)
		}
	}
}
