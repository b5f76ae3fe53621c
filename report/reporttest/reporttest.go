// Package reporttest checks HTML reports for the tests of the packages
// that write them: that a report is one self-contained, well-formed page
// holding every section, whose images all decode.
package reporttest

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"slices"
	"strings"

	"golang.org/x/net/html"
)

// Check parses page and returns its tree, or an error saying what is
// wrong: an element left open, an id of sections missing, an image that
// does not decode, anything fetched from elsewhere (a URL with a scheme
// other than data:, a script, a stylesheet link). report.Sections lists
// the sections of the reports package report writes.
func Check(page []byte, sections []string) (*html.Node, error) {
	if !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) {
		return nil, errors.New("the page does not start with <!DOCTYPE html>")
	}
	if err := wellFormed(page); err != nil {
		return nil, err
	}
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	var errs []error
	images := 0
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		if id := Attr(n, "id"); id != "" {
			if ids[id] {
				errs = append(errs, fmt.Errorf("id %q is used twice", id))
			}
			ids[id] = true
		}
		switch n.Data {
		case "script", "link", "iframe", "object", "embed":
			errs = append(errs, fmt.Errorf("the page has a <%s>", n.Data))
		case "img":
			images++
			if err := checkImage(Attr(n, "src")); err != nil {
				errs = append(errs, fmt.Errorf("image %d: %w", images, err))
			}
		}
		for _, a := range n.Attr {
			v := strings.ToLower(strings.TrimSpace(a.Val))
			if (a.Key == "src" || a.Key == "href") && (strings.Contains(v, "http://") || strings.Contains(v, "https://") || strings.HasPrefix(v, "//")) {
				errs = append(errs, fmt.Errorf("<%s %s=%q> points elsewhere", n.Data, a.Key, a.Val))
			}
			if a.Key == "href" && !strings.HasPrefix(v, "#") {
				errs = append(errs, fmt.Errorf("<%s href=%q> leaves the page", n.Data, a.Val))
			}
		}
	}
	for _, id := range sections {
		if !ids[id] {
			errs = append(errs, fmt.Errorf("no section %q", id))
		}
	}
	return doc, errors.Join(errs...)
}

// wellFormed checks that every element the page opens is closed in order,
// which html.Parse, forgiving as browsers are, does not.
func wellFormed(page []byte) error {
	z := html.NewTokenizer(bytes.NewReader(page))
	var open []string
	for {
		switch z.Next() {
		case html.ErrorToken:
			if err := z.Err(); err != io.EOF {
				return err
			}
			if len(open) > 0 {
				return fmt.Errorf("<%s> is never closed", open[len(open)-1])
			}
			return nil
		case html.StartTagToken:
			name, _ := z.TagName()
			if !isVoid(string(name)) {
				open = append(open, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(open) == 0 || open[len(open)-1] != string(name) {
				return fmt.Errorf("</%s> closes %v", name, open)
			}
			open = open[:len(open)-1]
		}
	}
}

// isVoid reports whether an element has no end tag.
func isVoid(name string) bool {
	switch name {
	case "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr":
		return true
	}
	return false
}

// checkImage decodes an image in a data URL: a PNG, or an SVG that must
// parse as XML.
func checkImage(src string) error {
	meta, data, ok := strings.Cut(src, ",")
	if !ok || !strings.HasPrefix(meta, "data:") {
		return fmt.Errorf("src %.40q is not a data URL", src)
	}
	var body []byte
	if strings.HasSuffix(meta, ";base64") {
		var err error
		if body, err = base64.StdEncoding.DecodeString(data); err != nil {
			return err
		}
		meta = strings.TrimSuffix(meta, ";base64")
	} else {
		body = []byte(data)
	}
	switch meta {
	case "data:image/png":
		img, err := png.Decode(bytes.NewReader(body))
		if err != nil {
			return err
		}
		if b := img.Bounds(); b.Dx() == 0 || b.Dy() == 0 {
			return fmt.Errorf("the PNG is %v", b)
		}
		return nil
	case "data:image/svg+xml":
		d := xml.NewDecoder(bytes.NewReader(body))
		for {
			if _, err := d.Token(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unexpected image type %q", meta)
}

// Attr returns n's attribute key, or "".
func Attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// Text is the text inside n, with runs of space folded to one; table
// cells, paragraphs and line breaks are apart by a space.
func Text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			return
		}
		apart := n.Type == html.ElementNode && slices.Contains([]string{"td", "th", "tr", "p", "div", "br", "li", "figcaption"}, n.Data)
		if apart {
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if apart {
			b.WriteByte(' ')
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// ByID returns the element of doc whose id is id, or nil.
func ByID(doc *html.Node, id string) *html.Node {
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && Attr(n, "id") == id {
			return n
		}
	}
	return nil
}

// All returns the elements under n called tag that have every class in
// classes.
func All(n *html.Node, tag string, classes ...string) []*html.Node {
	var found []*html.Node
	for d := range n.Descendants() {
		if d.Type != html.ElementNode || d.Data != tag {
			continue
		}
		have := strings.Fields(Attr(d, "class"))
		ok := true
		for _, c := range classes {
			if !slices.Contains(have, c) {
				ok = false
			}
		}
		if ok {
			found = append(found, d)
		}
	}
	return found
}
