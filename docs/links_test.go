package docs

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// linkRE matches an inline Markdown link or image, [text](target), after
// code has been blanked out; the text may wrap onto the next line.
var linkRE = regexp.MustCompile(`!?\[([^\]]*)\]\(([^)\s]*)\)`)

// headingRE matches an ATX heading outside code.
var headingRE = regexp.MustCompile(`^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$`)

// fenceRE matches the line that opens or closes a fenced code block.
var fenceRE = regexp.MustCompile("^ {0,3}(```|~~~)")

// page is a Markdown file with its code blanked out (offsets and newlines
// kept) and the anchors its headings produce.
type page struct {
	text    string
	anchors map[string]bool
}

// readPage reads a Markdown file: fenced code blocks and code spans are
// replaced by spaces, so that neither a link nor a heading is found in
// code, and the headings' anchors are collected.
func readPage(path string) (*page, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.SplitAfter(string(b), "\n")
	p := &page{anchors: map[string]bool{}}
	seen := map[string]int{}
	var out strings.Builder
	fence := ""
	for _, line := range lines {
		if m := fenceRE.FindStringSubmatch(line); m != nil && (fence == "" || m[1] == fence) {
			if fence == "" {
				fence = m[1]
			} else {
				fence = ""
			}
			out.WriteString(blank(line))
			continue
		}
		if fence != "" {
			out.WriteString(blank(line))
			continue
		}
		if m := headingRE.FindStringSubmatch(strings.TrimRight(line, "\r\n")); m != nil {
			s := slug(m[1])
			if n := seen[s]; n > 0 {
				p.anchors[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				p.anchors[s] = true
			}
			seen[s]++
		}
		out.WriteString(line)
	}
	p.text = blankCodeSpans(out.String())
	return p, nil
}

// blank replaces every character of s but newlines by a space.
func blank(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		return ' '
	}, s)
}

// blankCodeSpans blanks the code spans of s: a run of backticks up to the
// next run of the same length, delimiters included. A run with no closing
// run is literal text.
func blankCodeSpans(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		n := backticks(b, i)
		end := -1
		for j := i + n; j < len(b); {
			if b[j] != '`' {
				j++
				continue
			}
			k := backticks(b, j)
			if k == n {
				end = j + k
				break
			}
			j += k
		}
		if end < 0 {
			i += n
			continue
		}
		for j := i; j < end; j++ {
			if b[j] != '\n' {
				b[j] = ' '
			}
		}
		i = end
	}
	return string(b)
}

// backticks is the length of the run of backticks at b[i:].
func backticks(b []byte, i int) int {
	n := 0
	for i+n < len(b) && b[i+n] == '`' {
		n++
	}
	return n
}

// inlineLinkRE matches a link inside a heading, whose anchor uses its text.
var inlineLinkRE = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// slug is the anchor GitHub gives a heading: the text lowercased, every
// character but letters, digits, '_', '-' and spaces dropped (backticks
// and other punctuation included), spaces turned into '-'.
func slug(heading string) string {
	heading = inlineLinkRE.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// brokenLinks returns one line per broken relative link in the pages,
// "file:line: what", in the order of the pages and of the links in each.
// A page is named by its path relative to the directory root; links are
// resolved from its directory.
func brokenLinks(root string, names []string) ([]string, error) {
	pages := map[string]*page{}
	load := func(name string) (*page, error) {
		if p, ok := pages[name]; ok {
			return p, nil
		}
		p, err := readPage(filepath.Join(root, name))
		if err != nil {
			return nil, err
		}
		pages[name] = p
		return p, nil
	}
	var broken []string
	for _, name := range names {
		p, err := load(name)
		if err != nil {
			return nil, err
		}
		for _, m := range linkRE.FindAllStringSubmatchIndex(p.text, -1) {
			target := p.text[m[4]:m[5]]
			line := 1 + strings.Count(p.text[:m[0]], "\n")
			bad := func(format string, args ...any) {
				broken = append(broken, fmt.Sprintf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
			}
			if target == "" {
				bad("link with no target")
				continue
			}
			if u, err := url.Parse(target); err == nil && u.Scheme != "" {
				continue // http:, https:, mailto: ...
			}
			file, anchor, _ := strings.Cut(target, "#")
			if file, err = url.PathUnescape(file); err != nil {
				bad("undecodable path in %q", target)
				continue
			}
			if anchor, err = url.PathUnescape(anchor); err != nil {
				bad("undecodable anchor in %q", target)
				continue
			}
			targetName := name
			if file != "" {
				if strings.HasPrefix(file, "/") {
					bad("%q: absolute path (links must be relative)", target)
					continue
				}
				targetName = filepath.ToSlash(filepath.Join(filepath.Dir(name), file))
				if _, err := os.Stat(filepath.Join(root, targetName)); err != nil {
					bad("%q: no file %s", target, targetName)
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(targetName, ".md") {
				continue
			}
			tp, err := load(targetName)
			if err != nil {
				return nil, err
			}
			if !tp.anchors[anchor] {
				bad("%q: no heading of %s has the anchor #%s", target, targetName, anchor)
			}
		}
	}
	return broken, nil
}

// TestLinks checks every relative link of README.md and docs/*.md: its
// file exists and, for a Markdown file, its anchor is a heading's.
func TestLinks(t *testing.T) {
	names := []string{"README.md"}
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no docs/*.md found")
	}
	for _, p := range pages {
		names = append(names, "docs/"+p)
	}
	broken, err := brokenLinks("..", names)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range broken {
		t.Error(b)
	}
}

// TestBrokenLinksFound checks the checker on pages of its own: every kind
// of broken link is reported at its line, and links that work, or that
// only look like links inside code, are not.
func TestBrokenLinksFound(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.md", "# Page A\n\n"+
		"See [b](b.md#the-sequoia-bench-coldstart-run) and [its list](b.md#a-list-2).\n"+ // 3: good, good
		"A [missing file](c.md), and\n[a bad\nanchor](b.md#nope).\n"+ // 4: missing file; 5: bad anchor (its text wraps)
		"[here](#page-a), [not here](#page-b).\n"+ // 7: good, bad
		"`[code](nowhere.md)` and ``[more `code`](nowhere.md)``\n"+ // 8: code span: not links
		"```sh\n[fenced](nowhere.md)\n# Fenced heading\n```\n"+ // 9-12
		"[fenced heading](#fenced-heading) [web](https://example.com/x.md)\n") // 13: bad (headings in code make no anchor), external skipped
	write("b.md", "# The `sequoia bench coldstart` run!\n\n## A list\n\n## A list\n\n## A list\n")
	got, err := brokenLinks(dir, []string{"a.md"})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, g := range got {
		lines = append(lines, g[:strings.Index(g, ": ")])
	}
	want := []string{"a.md:4", "a.md:5", "a.md:7", "a.md:13"}
	if !slices.Equal(lines, want) {
		t.Errorf("broken links reported at %q, want %q:\n%s", lines, want, strings.Join(got, "\n"))
	}
}

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"`sequoia bench coldstart`":                        "sequoia-bench-coldstart",
		"Reserved concurrency (Lambda)":                    "reserved-concurrency-lambda",
		"Status (`/sequoia/v1/status`, `warm_pool`)":       "status-sequoiav1status-warm_pool",
		"Probes, shutdown, resources, security":            "probes-shutdown-resources-security",
		"`sequoia bench chains|coldstart|dags` [flags]":    "sequoia-bench-chainscoldstartdags-flags",
		"Passthrough: per-request cost against HAProxy":    "passthrough-per-request-cost-against-haproxy",
		"A [linked](x.md) heading":                         "a-linked-heading",
		"Durable asynchronous work: Lambda Events and DAG": "durable-asynchronous-work-lambda-events-and-dag",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}
