package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	err := Demo(context.Background(), []string{"-chains", "60", "-limit", "5", "-exec", "5ms", "-cold-start", "5ms", "-spread", "50ms"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var sequoiaRow []string
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "sequoia" {
			sequoiaRow = f
		}
	}
	// target chains completed refused dropped 429s ...
	if len(sequoiaRow) < 6 || sequoiaRow[1] != "60" || sequoiaRow[2] != "60" || sequoiaRow[3] != "0" || sequoiaRow[4] != "0" || sequoiaRow[5] != "0" {
		t.Errorf("sequoia row = %q, want 60 chains all completed, none refused or dropped, no 429s\n%s", sequoiaRow, out.String())
	}
	if !strings.Contains(out.String(), "direct") {
		t.Errorf("no direct row:\n%s", out.String())
	}
}
