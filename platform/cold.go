package platform

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

// ColdStart reads the platform's own cold-start flag from an answer of a
// platform of kind: the emulator's X-Emulator-Cold-Start header,
// OpenWhisk's initTime annotation in a full activation record. known
// reports whether the answer says at all (Lambda's and plain HTTP
// functions' do not).
func ColdStart(kind invocation.Platform, r *fasthttp.Response) (cold, known bool) {
	if r == nil {
		return false, false
	}
	if v := r.Header.Peek("X-Emulator-Cold-Start"); len(v) > 0 {
		return string(v) == "1", true
	}
	if kind == invocation.OpenWhisk && len(r.Header.Peek("X-Openwhisk-Activation-Id")) > 0 {
		body := r.Body()
		if len(body) < 64<<10 && bytes.Contains(body, []byte(`"annotations"`)) {
			return bytes.Contains(body, []byte(`"initTime"`)), true
		}
	}
	return false, false
}
