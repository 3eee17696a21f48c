// Package refgen builds the variables reference from package config's
// source: the configuration structs' field doc comments and their
// caarlos0/env tags. It writes config/reference_gen.go (what `sequoia
// serve --help` and `sequoia config` print) and docs/configuration.md, so
// that the two say the same thing as the code. `go generate ./config` runs
// it (config/refgen); config's tests fail when the files are stale.
package refgen

import (
	"bytes"
	_ "embed"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Prefix is the prefix of every variable (config.Prefix).
const Prefix = "SEQUOIA_"

// The files Generate writes, relative to package config's directory.
const (
	GoFile       = "reference_gen.go"
	MarkdownFile = "../docs/configuration.md"
)

// Concern is one configuration struct: a section of the reference.
type Concern struct {
	Field string // the field of Config that holds it
	Title string // the section's title
	Doc   string // what it configures
	Vars  []Var
}

// Var is one variable.
type Var struct {
	Name    string // with the prefix
	Default string
	Doc     string // its meaning; `code` in backticks
	Secret  bool
}

// Generate parses package config in dir and returns the generated files'
// contents by path relative to dir.
func Generate(dir string) (map[string][]byte, error) {
	cs, err := Parse(dir)
	if err != nil {
		return nil, err
	}
	src, err := goSource(cs)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{GoFile: src, MarkdownFile: markdown(cs)}, nil
}

// Parse reads the concerns from the Config struct of package config in dir,
// in declaration order.
func Parse(dir string) ([]Concern, error) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	structs := map[string]*ast.StructType{}
	docs := map[string]string{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") || filepath.Base(p) == GoFile {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if f.Name.Name != "config" {
			continue
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				structs[ts.Name.Name] = st
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				docs[ts.Name.Name] = oneLine(doc.Text())
			}
		}
	}
	root, ok := structs["Config"]
	if !ok {
		return nil, fmt.Errorf("refgen: no Config struct in %s", dir)
	}
	var cs []Concern
	for _, f := range root.Fields.List {
		id, ok := f.Type.(*ast.Ident)
		if !ok || len(f.Names) != 1 || structs[id.Name] == nil {
			return nil, fmt.Errorf("refgen: Config's fields must be named structs of package config, one per line")
		}
		c := Concern{Field: f.Names[0].Name, Title: title(f.Names[0].Name), Doc: concernDoc(id.Name, docs[id.Name])}
		if c.Doc == "" {
			return nil, fmt.Errorf("refgen: type %s has no doc comment", id.Name)
		}
		if err := collect(&c, id.Name, structs, map[string]bool{}); err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// collect adds the variables of struct name to c, descending into nested
// structs of the package that carry no env tag, as caarlos0/env does.
func collect(c *Concern, name string, structs map[string]*ast.StructType, seen map[string]bool) error {
	if seen[name] {
		return fmt.Errorf("refgen: %s contains itself", name)
	}
	seen[name] = true
	for _, f := range structs[name].Fields.List {
		tag := ""
		if f.Tag != nil {
			tag, _ = strconv.Unquote(f.Tag.Value)
		}
		st := reflect.StructTag(tag)
		envName, _, _ := strings.Cut(st.Get("env"), ",")
		if envName == "" {
			if id, ok := f.Type.(*ast.Ident); ok && structs[id.Name] != nil {
				if err := collect(c, id.Name, structs, seen); err != nil {
					return err
				}
			}
			continue
		}
		if len(f.Names) != 1 {
			return fmt.Errorf("refgen: %s: declare variable %s%s in a field of its own, with its own doc comment", name, Prefix, envName)
		}
		field := f.Names[0].Name
		doc := fieldDoc(field, oneLine(f.Doc.Text()))
		if doc == "" {
			return fmt.Errorf("refgen: %s.%s (%s%s) has no doc comment", name, field, Prefix, envName)
		}
		c.Vars = append(c.Vars, Var{Name: Prefix + envName, Default: st.Get("envDefault"), Doc: doc, Secret: st.Get("secret") == "true"})
	}
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// fieldDoc turns a Go field comment ("MaxRate bounds ...", "Listen is the
// ...") into the variable's meaning ("bounds ...", "the ...").
func fieldDoc(field, doc string) string {
	for _, lead := range []string{field + " is ", field + ", ", field + ": ", field + " "} {
		if rest, ok := strings.CutPrefix(doc, lead); ok {
			return rest
		}
	}
	return doc
}

// concernDoc turns "Serving configures the inbound servers." into "The
// inbound servers." for the section's introduction.
func concernDoc(typ, doc string) string {
	for _, lead := range []string{typ + " configures ", typ + " is ", typ + " "} {
		if rest, ok := strings.CutPrefix(doc, lead); ok {
			return capitalize(rest)
		}
	}
	return doc
}

func capitalize(s string) string {
	for i, r := range s {
		return string(unicode.ToUpper(r)) + s[i+len(string(r)):]
	}
	return s
}

// title turns a field name into a section title: WarmPool → Warm pool,
// DAGs → DAGs.
func title(field string) string {
	var words []string
	start := 0
	rs := []rune(field)
	for i := 1; i < len(rs); i++ {
		if unicode.IsUpper(rs[i]) && unicode.IsLower(rs[i-1]) {
			words = append(words, string(rs[start:i]))
			start = i
		}
	}
	words = append(words, string(rs[start:]))
	for i := 1; i < len(words); i++ {
		if w := words[i]; strings.ToUpper(w) != w {
			words[i] = strings.ToLower(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

func goSource(cs []Concern) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by refgen (go generate ./config) from the configuration structs' doc comments and tags. DO NOT EDIT.\n\npackage config\n\n")
	b.WriteString("var reference = []Concern{\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "{Title: %q, Doc: %q, Variables: []VariableDoc{\n", c.Title, c.Doc)
		for _, v := range c.Vars {
			fmt.Fprintf(&b, "{Name: %q, Default: %q, Doc: %q", v.Name, v.Default, v.Doc)
			if v.Secret {
				b.WriteString(", Secret: true")
			}
			b.WriteString("},\n")
		}
		b.WriteString("}},\n")
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}

//go:embed header.md
var header string

var variableName = regexp.MustCompile("`[^`]*`|" + Prefix + `[A-Z0-9_]*[A-Z0-9]`)

// mdText quotes variable names as code and escapes what a table cell
// cannot hold.
func mdText(s string) string {
	s = variableName.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "`") {
			return m
		}
		return "`" + m + "`"
	})
	return strings.ReplaceAll(s, "|", `\|`)
}

func markdown(cs []Concern) []byte {
	var b bytes.Buffer
	b.WriteString("<!-- Generated by `go generate ./config` from the doc comments and tags of config's structs: edit those, not this file. -->\n\n")
	b.WriteString(header)
	n := 0
	for _, c := range cs {
		n += len(c.Vars)
	}
	fmt.Fprintf(&b, "\n%d variables, in %d groups:", n, len(cs))
	for i, c := range cs {
		sep := ","
		if i == len(cs)-1 {
			sep = "."
		}
		fmt.Fprintf(&b, " [%s](#%s)%s", c.Title, anchor(c.Title), sep)
	}
	b.WriteString("\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n| variable | default | meaning |\n|---|---|---|\n", c.Title, mdText(c.Doc))
		for _, v := range c.Vars {
			def := "*empty*"
			if v.Default != "" {
				def = "`" + v.Default + "`"
			}
			doc := mdText(v.Doc)
			if v.Secret {
				doc += " *(secret: `sequoia config` and error messages never print it)*"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, def, doc)
		}
	}
	return b.Bytes()
}

func anchor(title string) string {
	return strings.ReplaceAll(strings.ToLower(title), " ", "-")
}

// Write writes the generated files into dir.
func Write(dir string, files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}
