package config

import (
	"fmt"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Concern is one section of the variables reference: one configuration
// struct.
type Concern struct {
	Title     string
	Doc       string // what the struct configures
	Variables []VariableDoc
}

// VariableDoc is one variable as the reference documents it.
type VariableDoc struct {
	Name    string // with the prefix
	Default string
	Doc     string // its meaning, from the field's doc comment; `code` in backticks
	Secret  bool
}

// Reference returns the variables reference: every variable, its default
// and its meaning, by concern. It is generated from this package's source
// (reference_gen.go), as docs/configuration.md is.
func Reference() []Concern { return slices.Clone(reference) }

// WriteReference prints the reference for a terminal, about 80 columns
// wide: what `sequoia serve --help` shows.
func WriteReference(w io.Writer) error {
	for i, c := range reference {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %s\n", c.Title, plain(c.Doc))
		for _, v := range c.Variables {
			fmt.Fprintf(w, "\n  %s (default %s)\n", v.Name, shownDefault(v.Default))
			wrap(w, plain(v.Doc), "      ", 78)
		}
	}
	return nil
}

// Setting is one variable's effective value.
type Setting struct {
	VariableDoc
	Value string // as it is in effect; a secret's is "(hidden)" when set
	Set   bool   // the environment sets it
}

// Settings lists every variable's effective value in cfg, read from
// environ, in the reference's order. Secrets are hidden, and so is the
// password of a URL.
func Settings(cfg Config, environ []string) []Setting {
	envMap := environMap(environ)
	values := map[string]string{}
	v := reflect.ValueOf(cfg)
	walkValues(v, func(f reflect.StructField, fv reflect.Value) {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		values[Prefix+name] = format(fv)
	})
	var out []Setting
	for _, c := range reference {
		for _, d := range c.Variables {
			_, set := envMap[d.Name]
			value := values[d.Name]
			if d.Secret && value != "" {
				value = "(hidden)"
			} else {
				value = redactURLs(value)
			}
			out = append(out, Setting{VariableDoc: d, Value: value, Set: set})
		}
	}
	return out
}

// WriteSettings prints settings in the shell's KEY=value form, each under
// a comment with its meaning and default, and its concern's title above.
func WriteSettings(w io.Writer, settings []Setting) error {
	title := map[string]string{}
	for _, c := range reference {
		title[c.Variables[0].Name] = c.Title + ": " + plain(c.Doc)
	}
	for i, s := range settings {
		if t, ok := title[s.Name]; ok {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "# == %s\n", t)
		}
		from := "default"
		if s.Set {
			from = "set; default " + shownDefault(s.Default)
		}
		fmt.Fprintln(w)
		wrap(w, plain(s.Doc)+" ("+from+")", "# ", 78)
		fmt.Fprintf(w, "%s=%s\n", s.Name, shellQuote(s.Value))
	}
	return nil
}

func shownDefault(d string) string {
	if d == "" {
		return "empty"
	}
	return d
}

// plain drops the backticks that mark code in the reference.
func plain(s string) string { return strings.ReplaceAll(s, "`", "") }

// wrap prints text in lines of at most width columns, each after indent.
func wrap(w io.Writer, text, indent string, width int) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		fmt.Fprintln(w, line)
	}
}

// shellQuote quotes a value for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s == "" {
		return ""
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,=@+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// format writes a field's value the way its variable is spelt.
func format(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	if v.Kind() == reflect.Map {
		keys := v.MapKeys()
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%v=%v", k.Interface(), v.MapIndex(k).Interface()))
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// redactURLs hides the password of every URL in a comma-separated value.
func redactURLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				parts[i] = u.Redacted()
			}
		}
	}
	return strings.Join(parts, ",")
}

func walkValues(v reflect.Value, fn func(reflect.StructField, reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" && f.Type != reflect.TypeFor[time.Time]() {
			walkValues(v.Field(i), fn)
			continue
		}
		if f.Tag.Get("env") != "" {
			fn(f, v.Field(i))
		}
	}
}
