package config

import (
	"strings"

	"github.com/sequoia-qos/sequoia/internal/fnmap"
	"github.com/sequoia-qos/sequoia/invocation"
)

// OverflowKind returns the overflow platform's API: SEQUOIA_OVERFLOW_BACKEND,
// else the primary's. ok is false when it names no API.
func (p Platforms) OverflowKind(backend string) (invocation.Platform, bool) {
	if p.OverflowBackend == "" {
		return invocation.ParsePlatform(backend)
	}
	return invocation.ParsePlatform(p.OverflowBackend)
}

// OverflowNames builds the function-name resolver of an overflow of
// another API from SEQUOIA_OVERFLOW_FUNCTIONS.
func (p Platforms) OverflowNames(backend string) (*fnmap.Resolver, error) {
	from, _ := invocation.ParsePlatform(backend)
	to, _ := p.OverflowKind(backend)
	return fnmap.New(p.OverflowFunctions, from, to, p.OverflowHTTPDomain != "")
}

// checkOverflow checks the overflow variables together. The OpenWhisk key
// is never printed.
func (p Platforms) checkOverflow(backend string, bad func(name string, v any, why string)) {
	to, ok := p.OverflowKind(backend)
	if !ok {
		bad("OVERFLOW_BACKEND", p.OverflowBackend, "must be openwhisk, lambda or http (or empty: SEQUOIA_BACKEND's)")
		return
	}
	from, fromOK := invocation.ParsePlatform(backend)
	if p.OverflowURL == "" {
		for name, v := range map[string]string{"OVERFLOW_BACKEND": p.OverflowBackend, "OVERFLOW_FUNCTIONS": p.OverflowFunctions,
			"OVERFLOW_HTTP_DOMAIN": p.OverflowHTTPDomain} {
			if v != "" {
				bad(name, v, "is set but SEQUOIA_OVERFLOW_URL is not")
			}
		}
		if p.OverflowOpenWhiskAuth != "" {
			bad("OVERFLOW_OPENWHISK_AUTH", "(hidden)", "is set but SEQUOIA_OVERFLOW_URL is not")
		}
		return
	}
	if !fromOK {
		return // SEQUOIA_BACKEND's own error says it
	}
	cross := from != to
	if p.OverflowFunctions != "" && !cross {
		bad("OVERFLOW_FUNCTIONS", p.OverflowFunctions, "maps names for an overflow platform of another API; SEQUOIA_OVERFLOW_BACKEND is SEQUOIA_BACKEND's ("+backend+"), whose requests go on as they are")
	} else if _, err := p.OverflowNames(backend); err != nil {
		bad("OVERFLOW_FUNCTIONS", p.OverflowFunctions, err.Error())
	}
	if p.OverflowOpenWhiskAuth != "" || to == invocation.OpenWhisk && cross {
		user, key, ok := strings.Cut(p.OverflowOpenWhiskAuth, ":")
		switch {
		case to != invocation.OpenWhisk:
			bad("OVERFLOW_OPENWHISK_AUTH", "(hidden)", "is set but the overflow platform is not OpenWhisk")
		case p.OverflowOpenWhiskAuth == "":
			bad("OVERFLOW_OPENWHISK_AUTH", "", "required for an OpenWhisk overflow of a "+backend+" primary: the client's credentials belong to the primary; set the overflow namespace's API key (uuid:key)")
		case !ok || user == "" || key == "" || strings.ContainsAny(p.OverflowOpenWhiskAuth, " \t\r\n"):
			bad("OVERFLOW_OPENWHISK_AUTH", "(hidden)", "must be an OpenWhisk API key, uuid:key")
		}
	}
	if d := p.OverflowHTTPDomain; d != "" {
		if to != invocation.HTTP || !cross {
			bad("OVERFLOW_HTTP_DOMAIN", d, "only for an http overflow platform of another API than SEQUOIA_BACKEND's")
		} else if !isDomain(d) {
			bad("OVERFLOW_HTTP_DOMAIN", d, "must be a DNS domain like default.example.com")
		}
	}
}

// isDomain reports whether d is dot-separated DNS labels: each one a name
// fnmap accepts for an http service reached by Host.
func isDomain(d string) bool {
	if len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if _, err := fnmap.ParseTarget(invocation.HTTP, l, true); err != nil {
			return false
		}
	}
	return true
}
