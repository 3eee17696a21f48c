package dag

import (
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

// target fills req with the platform's invoke call for a task: OpenWhisk's
// blocking call that answers with the result, Lambda's synchronous
// Invoke, an http function's POST /{function}. It returns the invocation's
// tenant (the OpenWhisk namespace, else "").
func target(req *fasthttp.Request, p invocation.Platform, host string, n *Node) (tenant string) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	switch p {
	case invocation.OpenWhisk:
		ns, action, ok := strings.Cut(n.Function, "/")
		if !ok {
			ns, action = "_", n.Function
		}
		req.SetRequestURI("/api/v1/namespaces/" + ns + "/actions/" + action + "?blocking=true&result=true")
		tenant = ns
	case invocation.Lambda:
		uri := "/2015-03-31/functions/" + n.Function + "/invocations"
		if n.Qualifier != "" {
			uri += "?Qualifier=" + n.Qualifier
		}
		req.SetRequestURI(uri)
	default:
		req.SetRequestURI("/" + n.Function)
	}
	// The upstream client sets the Host of OpenWhisk and Lambda calls; an
	// http backend is reached by its own host.
	req.Header.SetHost(host)
	return tenant
}
