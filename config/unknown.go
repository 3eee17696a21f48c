package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
)

// serviceLink matches the variables Kubernetes derives from a Service
// named sequoia or sequoia-* in the pod's namespace (SEQUOIA_SERVICE_HOST,
// SEQUOIA_PORT_8080_TCP_ADDR, SEQUOIA_ADMIN_SERVICE_PORT, ...): they are
// not sequoia's, and a pod without enableServiceLinks: false gets them.
var serviceLink = regexp.MustCompile(`^` + Prefix + `([A-Z0-9_]+_)?(SERVICE_(HOST|PORT(_[A-Z0-9_]+)?)|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// Unknown reports each SEQUOIA_ variable of environ that sequoia does not
// read, with the closest known name when one is close, sorted by name.
// Variables Kubernetes derives from a Service are not reported.
//
// An unknown variable is an error rather than a warning: a misspelt one
// (SEQUOIA_MAX_CONCURENCY=5) would otherwise leave the default in force
// without a word, and the default may be the wrong budget for the
// platform.
func Unknown(environ []string) []error {
	known := variablesByName()
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, Prefix) || serviceLink.MatchString(name) {
			continue
		}
		if _, ok := known[name]; !ok && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	errs := make([]error, 0, len(names))
	for _, name := range names {
		if near := Closest(name); near != "" {
			errs = append(errs, fmt.Errorf("%s is not a sequoia variable: did you mean %s?", name, near))
		} else {
			errs = append(errs, fmt.Errorf("%s is not a sequoia variable (`sequoia serve --help` lists them)", name))
		}
	}
	return errs
}

// Closest returns the known variable nearest to name by edit distance, or
// "" when none is near enough to be a misspelling of it (more than a third
// of its characters differ).
func Closest(name string) string {
	best, bestD := "", -1
	for _, v := range Variables() {
		d := levenshtein.ComputeDistance(strings.TrimPrefix(name, Prefix), strings.TrimPrefix(v.Name, Prefix))
		if bestD < 0 || d < bestD {
			best, bestD = v.Name, d
		}
	}
	if bestD < 0 || 3*bestD > len(strings.TrimPrefix(best, Prefix)) {
		return ""
	}
	return best
}
