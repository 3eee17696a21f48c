package serve

import (
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// TestASLAPI: PUT /sequoia/v1/dags/{name} with a state machine registers
// it and runs it; one sequoia cannot run is answered 400 naming the state
// and the field; a failed run carries the state machine's error and cause.
func TestASLAPI(t *testing.T) {
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 50})
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_HTTP_ROUTE=path", apiTokens(t))
	c := apiClient{t, "http://" + s.dataLn.Addr().String()}
	c.want(201, "PUT", "/sequoia/v1/dags/hello", `{"StartAt":"Hello","States":{"Hello":{"Type":"Task",
		"Resource":"arn:aws:lambda:us-east-1:123456789012:function:hello","ResultSelector":{"f.$":"$.function","in.$":"$.input"},"End":true}}}`, asOps...)
	if _, b := c.want(200, "POST", "/sequoia/v1/dags/hello/runs", `{"input":{"k":1}}`); b != `{"f":"hello","in":{"k":1}}` {
		t.Errorf("run output %s", b)
	}
	_, b := c.want(400, "PUT", "/sequoia/v1/dags/bad", `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"f","HeartbeatSeconds":5,"End":true}}}`, asOps...)
	if !strings.Contains(b, `state \"A\": field HeartbeatSeconds`) {
		t.Errorf("400 body %s: want the state and the field named", b)
	}
	c.want(201, "PUT", "/sequoia/v1/dags/fails", `{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"OrderMissing","Cause":"no such order"}}}`, asOps...)
	// A Task's function is one the data port's invoke API can name, as
	// for a DAG's tasks, in any scope.
	for _, fn := range []string{"_stats", "a/b", ".well-known"} {
		_, b := c.want(400, "PUT", "/sequoia/v1/dags/odd", `{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,
			"Branches":[{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"`+fn+`","End":true}}}]}}}`, asOps...)
		if !strings.Contains(b, `state \"T\": field Resource`) {
			t.Errorf("function %q answered %s: want the state and the field named", fn, b)
		}
	}
	_, b = c.do("POST", "/sequoia/v1/dags/fails/runs", `{"input":{}}`)
	if !strings.Contains(b, `"error_name":"OrderMissing"`) || !strings.Contains(b, `"cause":"no such order"`) {
		t.Errorf("failed run answered %s: want its error name and cause", b)
	}
}
