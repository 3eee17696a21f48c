// Package fnmap names a function of one platform API in another's terms,
// for overflow to a platform of another kind: OpenWhisk's
// "ns/[pkg/]action", a Lambda function name (and qualifier), an http or
// Knative service.
//
// Organisation: New parses SEQUOIA_OVERFLOW_FUNCTIONS (explicit
// "primary=overflow" entries) into a Resolver, checking every name against
// the rules of its API, so that a bad entry stops start-up; Resolve then
// names each invocation's overflow target, explicitly mapped or by the
// documented default (OpenWhisk "ns/pkg/action" is "pkg-action" elsewhere,
// a Lambda or http "name" is OpenWhisk's "/_/name"). A name the default
// cannot carry (a '.' or '@' in an OpenWhisk name going to Lambda) is an
// error that says to map it.
//
// Usage:
//
//	r, err := fnmap.New("guest/img/resize=img-resizer:prod", invocation.OpenWhisk, invocation.Lambda, false)
//	t, err := r.Resolve("guest/img/resize", "") // Lambda img-resizer, qualifier prod
//	t, err = r.Resolve("guest/report", "")      // default: Lambda report
package fnmap
