package runtime

import (
	"slices"
	"strings"
	"testing"
)

func TestBroadcastShapes(t *testing.T) {
	for _, c := range []struct {
		in   [][]int
		want []int
		err  string
	}{
		{in: [][]int{{2, 3}, {3}}, want: []int{2, 3}},
		{in: [][]int{{2, 1, 4}, {3, 1}}, want: []int{2, 3, 4}},
		{in: [][]int{{}, {5}}, want: []int{5}},
		{in: [][]int{{}, {}}, want: []int{}},
		{in: [][]int{{0, 3}, {1, 3}}, want: []int{0, 3}},
		{in: [][]int{{0}, {1}}, want: []int{0}},
		{in: [][]int{{2, 3}, {1, 3}, {4, 1, 1}}, want: []int{4, 2, 3}},
		{in: [][]int{{2, 3}, {4}}, err: "cannot broadcast"},
		{in: [][]int{{0}, {2}}, err: "cannot broadcast"},
	} {
		got, err := broadcastShapes(c.in...)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("broadcastShapes(%v) error = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("broadcastShapes(%v) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestUnidirectional(t *testing.T) {
	ok := [][2][]int{{{3}, {2, 3}}, {{1, 3}, {2, 3}}, {{}, {2}}, {{2, 1}, {2, 5}}}
	for _, c := range ok {
		if err := unidirectional(c[0], c[1]); err != nil {
			t.Errorf("unidirectional(%v, %v) = %v", c[0], c[1], err)
		}
	}
	bad := [][2][]int{{{2, 3}, {3}}, {{4}, {2, 3}}, {{2, 3}, {1, 3}}}
	for _, c := range bad {
		if err := unidirectional(c[0], c[1]); err == nil {
			t.Errorf("unidirectional(%v, %v) accepted", c[0], c[1])
		}
	}
}

// naiveIndex is the flat index in an operand of shape s of the output
// element at multi-index idx, by the definition of broadcasting.
func naiveIndex(idx, s []int) int {
	off := len(idx) - len(s)
	flat := 0
	for i, d := range s {
		j := idx[off+i]
		if d == 1 {
			j = 0
		}
		flat = flat*d + j
	}
	return flat
}

func TestBroadcastBinaryMatchesDefinition(t *testing.T) {
	shapes := [][2][]int{
		{{2, 3}, {2, 3}}, {{2, 3}, {3}}, {{2, 3}, {2, 1}}, {{2, 1, 4}, {3, 1}}, {{1, 3, 1, 2}, {4, 1, 5, 1}},
		{{}, {3, 2}}, {{3, 2}, {}}, {{1}, {1}}, {{5, 1, 1}, {1, 1, 7}}, {{2, 3, 4}, {2, 1, 4}}, {{0, 3}, {3}},
	}
	for _, s := range shapes {
		oshape, err := broadcastShapes(s[0], s[1])
		if err != nil {
			t.Fatal(err)
		}
		a := make([]int, mustElements(s[0]))
		b := make([]int, mustElements(s[1]))
		for i := range a {
			a[i] = i + 1
		}
		for i := range b {
			b[i] = 1000 * (i + 1)
		}
		out := make([]int, mustElements(oshape))
		broadcastBinary(out, oshape, a, s[0], b, s[1], func(o, x, y []int) {
			mapBinary(o, x, y, func(p, q int) int { return p + q })
		})
		idx := make([]int, len(oshape))
		for flat := range out {
			rem := flat
			for i := len(oshape) - 1; i >= 0; i-- {
				idx[i] = rem % oshape[i]
				rem /= oshape[i]
			}
			want := a[naiveIndex(idx, s[0])] + b[naiveIndex(idx, s[1])]
			if out[flat] != want {
				t.Errorf("%v + %v: element %v = %d, want %d", s[0], s[1], idx, out[flat], want)
				break
			}
		}
		// The same through three operands.
		c := []int{7}
		out3 := make([]int, len(out))
		broadcastTernary(out3, oshape, a, s[0], b, s[1], c, []int{1}, func(o, x, y, z []int) {
			for i := range o {
				o[i] = x[min(i, len(x)-1)] + y[min(i, len(y)-1)] + z[0]
			}
		})
		for i := range out {
			if out3[i] != out[i]+7 {
				t.Errorf("ternary %v %v: element %d = %d, want %d", s[0], s[1], i, out3[i], out[i]+7)
				break
			}
		}
	}
}

func TestExpandInto(t *testing.T) {
	dst := make([]int, 12)
	expandInto(dst, []int{2, 2, 3}, []int{1, 2, 3}, []int{3})
	want := []int{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}
	if !slices.Equal(dst, want) {
		t.Errorf("expandInto = %v, want %v", dst, want)
	}
	expandInto(dst, []int{2, 2, 3}, []int{4, 5}, []int{2, 1, 1})
	want = []int{4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5}
	if !slices.Equal(dst, want) {
		t.Errorf("expandInto = %v, want %v", dst, want)
	}
}
