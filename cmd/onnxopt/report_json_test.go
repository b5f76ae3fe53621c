package main

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"onnxopt/passes"
	"onnxopt/verify"
)

// A jsonDoc is the report a command with --json prints, and the objects
// inside it that another command's section documents, which its own
// section names without listing their fields again.
type jsonDoc struct {
	report reflect.Type
	shared []reflect.Type
}

// jsonReports returns the report of each command with --json, by the
// heading of its section in docs/json.md.
func jsonReports() map[string]jsonDoc {
	counts, verifyReport := reflect.TypeFor[passes.Counts](), reflect.TypeFor[verify.Report]()
	return map[string]jsonDoc{
		"inspect":     {report: reflect.TypeFor[inspectReport]()},
		"optimize":    {report: reflect.TypeFor[optimizeReport]()},
		"run":         {report: reflect.TypeFor[runReport]()},
		"conformance": {report: reflect.TypeFor[conformanceReport]()},
		"verify":      {report: verifyReport},
		"quantize":    {report: reflect.TypeFor[quantizeReport](), shared: []reflect.Type{counts, verifyReport}},
		"prune":       {report: reflect.TypeFor[pruneReport](), shared: []reflect.Type{verifyReport, reflect.TypeFor[calibrationJSON]()}},
	}
}

// TestJSONDocs checks that the section of docs/json.md for each command
// lists, in its field tables, exactly the JSON fields of the command's
// report and of the objects inside it.
func TestJSONDocs(t *testing.T) {
	sections := docSections(t, "../../docs/json.md")
	for command, doc := range jsonReports() {
		documented, ok := sections[command]
		if !ok {
			t.Errorf("docs/json.md has no section %q", command)
			continue
		}
		fields := map[string]bool{}
		jsonFields(t, doc.report, doc.shared, fields, 0)
		for name := range fields {
			if !documented[name] {
				t.Errorf("%s: field %q is not in docs/json.md", command, name)
			}
		}
		for name := range documented {
			if !fields[name] {
				t.Errorf("%s: docs/json.md lists %q, which the report does not have", command, name)
			}
		}
	}
}

// docSections reads the fields each "## command" section of the doc
// lists: the first cell, in backquotes, of its table rows.
func docSections(t *testing.T, path string) map[string]map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string]bool{}
	var current map[string]bool
	for line := range strings.Lines(string(b)) {
		if heading, ok := strings.CutPrefix(line, "## "); ok {
			current = map[string]bool{}
			sections[strings.TrimSpace(heading)] = current
			continue
		}
		cell, ok := strings.CutPrefix(line, "| `")
		if !ok || current == nil {
			continue
		}
		name, _, ok := strings.Cut(cell, "`")
		if !ok {
			t.Fatalf("%s: unclosed field name in %q", path, line)
		}
		current[name] = true
	}
	return sections
}

// jsonFields adds to fields the JSON field names of typ and of the types
// inside it but those shared. A type with its own MarshalJSON is
// marshaled with every field set, so that the names it writes are found
// and none is left out as empty.
func jsonFields(t *testing.T, typ reflect.Type, shared []reflect.Type, fields map[string]bool, depth int) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array || typ.Kind() == reflect.Map {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || depth > 10 || slices.Contains(shared, typ) {
		return
	}
	marshaler := reflect.TypeFor[json.Marshaler]()
	if typ.Implements(marshaler) || reflect.PointerTo(typ).Implements(marshaler) {
		v := reflect.New(typ).Elem()
		fill(v, 0)
		b, err := json.Marshal(v.Interface())
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatalf("%s wrote %s: %v", typ, b, err)
		}
		for name := range obj {
			fields[name] = true
		}
		return
	}
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
			continue
		case name == "" && f.Anonymous:
			jsonFields(t, f.Type, shared, fields, depth+1)
			continue
		case name == "":
			name = f.Name
		}
		fields[name] = true
		jsonFields(t, f.Type, shared, fields, depth+1)
	}
}

// fill sets every field of v, recursively, to a value that is not empty.
func fill(v reflect.Value, depth int) {
	if depth > 10 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), depth+1)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), depth+1)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		key, elem := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(key, depth+1)
		fill(elem, depth+1)
		v.SetMapIndex(key, elem)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	}
}

// TestJSONFieldsSeesMarshalers checks the field finder on the two types
// with their own MarshalJSON: it must find the names they write, not
// their Go fields.
func TestJSONFieldsSeesMarshalers(t *testing.T) {
	fields := map[string]bool{}
	jsonFields(t, reflect.TypeFor[verify.OutputResult](), nil, fields, 0)
	for _, want := range []string{"sqnr_db", "identical", "top1", "mismatch", "max_abs_error"} {
		if !fields[want] {
			t.Errorf("metrics field %q not found", want)
		}
	}
	fields = map[string]bool{}
	jsonFields(t, reflect.TypeFor[verify.Tolerance](), nil, fields, 0)
	var names []string
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"atol", "min_cosine", "min_top1", "rtol"}; !slices.Equal(names, want) {
		t.Errorf("tolerance fields %q, want %q", names, want)
	}
}
